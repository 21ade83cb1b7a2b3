"""The encrypted DNS listeners (DoH, DoT) and the roster that names their clients.

Kept apart from ``service`` so that the service only starts, stops and tells this one when
the policy changed. The roster is a CSV file (``identity.roster``, by default
``roster.csv`` in the data directory) written by ``filterdns roster import`` or the console;
every worker notices a new file within ``ROSTER_POLL`` seconds and swaps the new roster in
with one assignment, so a query never sees half a roster.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

from filterdns.config.model import Config, Endpoint, GroupConfig
from filterdns.identity.roster import Identity, Roster, RosterError, load_roster
from filterdns.resolver.access import NetworkSet
from filterdns.resolver.pipeline import QueryPipeline
from filterdns.server.doh import DohServer
from filterdns.server.dot import ServerNames
from filterdns.server.listeners import TCP_BACKLOG, ListenError, bind_socket, explain_bind_error
from filterdns.server.tcp import TcpConnections
from filterdns.server.tls import server_context

log = logging.getLogger("filterdns.service")

ROSTER_POLL = 5.0
_RELOAD = (-1.0, -1)  # a file stamp no file has: load the roster again at the next look
# Groups whose names say they are for adults are never chosen for unknown clients.
_ADULT_GROUP = re.compile(r"staff|teacher|admin|employee", re.IGNORECASE)


def unknown_group(config: Config) -> str:
    """The group of an id the roster lacks: the configured one while it exists, otherwise
    the strictest pupil group (see ``strictest_group``)."""
    names = {group.name for group in config.policy.groups}
    if config.node.identity.unknown_group in names:
        return config.node.identity.unknown_group
    return strictest_group(config.policy.groups, config.policy.default_group)


def strictest_group(groups: Sequence[GroupConfig], default_group: str) -> str:
    """The group for unknown encrypted clients when the config names none: the group that
    blocks the most categories (always-blocked ones first, then scheduled ones), skipping
    groups named for staff, teachers or admins and groups that turn bypass protection off.
    A stranger with a made-up id thus gets at least a pupil's restrictions."""
    candidates = [g for g in groups if g.bypass_protection and not _ADULT_GROUP.search(g.name)]
    if not candidates:
        return default_group

    def strictness(group: GroupConfig) -> tuple[int, int]:
        scheduled = {category for rule in group.rules for category in rule.block}
        return len(set(group.block)), len(scheduled - set(group.block))

    return max(candidates, key=strictness).name


def read_roster(config: Config) -> Roster:
    return load_roster(
        config.node.roster_path,
        {group.name for group in config.policy.groups},
        salt=config.node.identity.salt,
        unknown_group=unknown_group(config),
    )


class EncryptedDns:
    """DoH and DoT listeners, bound with the DNS ones (``bind``, before root is dropped: ports
    443 and 853 and a root-only key need it) and served just before them (``serve``)."""

    def __init__(self, config: Config):
        self.config = config
        self.roster = Roster((), salt=config.node.identity.salt, unknown_group=unknown_group(config))
        self._bound: list[tuple[str, socket.socket]] = []
        self._contexts: dict[str, ssl.SSLContext | None] = {}
        self._names = ServerNames(config.node.identity.hostname, self.identify)
        self._servers: list[asyncio.Server] = []
        self._connections: list[TcpConnections] = []
        self._stamp: tuple[float, int] | None = _RELOAD
        self._roster_fault = ""
        self._watcher: asyncio.Task | None = None

    def identify(self, client_id: str) -> Identity:
        return self.roster.identify(client_id)

    def addresses(self, kind: str) -> list[Endpoint]:
        """Bound addresses of the ``"doh"`` or ``"dot"`` listeners."""
        return [Endpoint(*sock.getsockname()[:2]) for name, sock in self._bound if name == kind]

    def bind(self) -> None:
        """Bind every DoH and DoT address and read the certificates, or raise ``ListenError``."""
        doh, dot = self.config.node.doh, self.config.node.dot
        reuse_port = self.config.node.server.workers > 1
        try:
            if doh.listen:
                tls = doh.tls_cert is not None and doh.tls_key is not None
                self._contexts["doh"] = server_context(doh.tls_cert, doh.tls_key, ("h2", "http/1.1")) if tls else None  # type: ignore[arg-type]
            if dot.listen and dot.tls_cert is not None and dot.tls_key is not None:
                self._contexts["dot"] = self._names.context(dot.tls_cert, dot.tls_key)
        except (OSError, ssl.SSLError) as error:
            raise ListenError(f"the encrypted DNS certificate cannot be used: {error}") from None
        for kind, endpoints in (("doh", doh.listen), ("dot", dot.listen)):
            for endpoint in endpoints if kind in self._contexts else ():
                try:
                    self._bound.append((kind, bind_socket(endpoint, socket.SOCK_STREAM, reuse_port)))
                except OSError as error:
                    self.close()
                    raise ListenError(explain_bind_error(endpoint, error)) from None

    async def serve(self, pipeline: QueryPipeline, config: Config) -> None:
        """Load the roster for ``config`` (the policy in force names the groups), start
        answering, and watch the roster file."""
        if not self._bound:
            return
        self.config = config
        await self.refresh_roster()
        doh, server = config.node.doh, config.node.server
        loop = asyncio.get_running_loop()
        doh_connections = TcpConnections(pipeline, doh.idle_timeout, doh.max_connections, doh.max_per_client)
        doh_server = DohServer(
            pipeline, self.identify, doh_connections,
            tls=self._contexts.get("doh") is not None, trusted_proxies=NetworkSet(doh.trusted_proxies),
        )
        dot_connections = TcpConnections(
            pipeline, server.tcp_idle_timeout, server.tcp_max_connections, server.tcp_max_per_client,
            transport="dot", identify=self._names.identity,
        )
        self._connections = [doh_connections, dot_connections]
        factories = {"doh": doh_server.protocol, "dot": dot_connections.protocol}
        for kind, sock in self._bound:
            self._servers.append(
                await loop.create_server(factories[kind], sock=sock, ssl=self._contexts[kind], backlog=TCP_BACKLOG)
            )
        self._watcher = asyncio.create_task(self._watch_roster(), name="roster")
        for kind, label in (("doh", "DNS over HTTPS"), ("dot", "DNS over TLS")):
            for endpoint in self.addresses(kind):
                log.info("listening for %s on %s", label, endpoint)

    def config_changed(self, config: Config) -> None:
        """A new policy may rename groups, a reloaded file change the salt or the host name:
        the roster is read again, and DoT names are read against the new host name."""
        self.config = config
        self._names.hostname = config.node.identity.hostname
        self._stamp = _RELOAD

    async def refresh_roster(self) -> None:
        """Reload the roster if its file (or the config) changed since the last load. A bad
        file keeps the roster in use; the fault is logged once until it changes."""
        path = self.config.node.roster_path
        stamp = _file_stamp(path)
        if stamp == self._stamp:
            return
        try:
            roster = await asyncio.to_thread(read_roster, self.config)
        except (RosterError, OSError, UnicodeDecodeError) as error:
            fault = f"{stamp}: {error}"
            if fault != self._roster_fault:
                log.error("the roster %s cannot be used, keeping the one in use:\n%s", path, error)
                self._roster_fault = fault
            self._stamp = stamp
            return
        self._roster_fault = ""
        self._stamp = stamp
        self.roster = roster
        log.info("roster: %d entries; unknown encrypted clients get group %s", len(roster), roster.unknown_group)
        configured = self.config.node.identity.unknown_group
        if configured and configured != roster.unknown_group:
            log.warning("identity.unknown_group %r is not a group of the policy in force", configured)

    async def _watch_roster(self) -> None:
        while True:
            await asyncio.sleep(ROSTER_POLL)
            await self.refresh_roster()

    def stop_reading(self) -> None:
        for server in self._servers:
            server.close()
        if self._watcher is not None:
            self._watcher.cancel()

    async def drain(self, timeout: float) -> None:
        await asyncio.gather(*(connections.drain(timeout) for connections in self._connections))

    def close(self) -> None:
        for connections in self._connections:
            connections.close_all()
        for _, sock in self._bound:
            sock.close()
        self._bound.clear()


def _file_stamp(path: Path) -> tuple[float, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime, status.st_size
