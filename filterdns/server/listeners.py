"""The DNS listeners: every socket this node answers on, bound first and served last.

Binding comes before anything else at start: a port held by another process stops the start
before the store is written or a list is loaded, so a failed start changes nothing. The
sockets are served once the pipeline exists (the kernel holds what arrives meanwhile), and on
stop they stop reading, answer what is in flight and close. Every kind of listener starts
here, so there is one place that says what this node listens on.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from filterdns.config.model import Endpoint, ServerConfig
from filterdns.resolver.pipeline import QueryPipeline
from filterdns.server.tcp import TcpConnections
from filterdns.server.udp import UdpListener

log = logging.getLogger("filterdns.service")

TCP_BACKLOG = 1024


class ListenError(Exception):
    """An address could not be bound; the message says which and what to do."""


def explain_bind_error(endpoint: Endpoint | str, error: OSError) -> str:
    """A sentence for an operator: which address, and the likely cause."""
    if error.errno == errno.EADDRINUSE:
        return f"{endpoint} is already in use — is another filterdns running? (or another DNS server such as systemd-resolved or dnsmasq)"
    if error.errno == errno.EACCES:
        return f"{endpoint}: permission denied — ports below 1024 need root or CAP_NET_BIND_SERVICE; try --listen 127.0.0.1:5353"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{endpoint}: this machine has no such address"
    return f"{endpoint}: {error.strerror or error}"


class DnsListeners:
    """UDP and TCP on each of ``server.listen``, on the same port."""

    def __init__(self, server: ServerConfig) -> None:
        self._config = server
        self._bound: list[tuple[socket.socket, socket.socket]] = []
        self._udp: list[UdpListener] = []
        self._tcp: TcpConnections | None = None
        self._tcp_servers: list[asyncio.Server] = []

    @property
    def addresses(self) -> list[Endpoint]:
        """The bound addresses (with the port the kernel chose for port 0)."""
        return [Endpoint(*udp.getsockname()[:2]) for udp, _ in self._bound]

    def bind(self) -> None:
        """Bind every address, or none: raises ``ListenError`` naming the first that fails."""
        reuse_port = self._config.workers > 1
        try:
            for endpoint in self._config.listen:
                self._bound.append(self._bind_pair(endpoint, reuse_port))
        except ListenError:
            self.close()
            raise

    def _bind_pair(self, endpoint: Endpoint, reuse_port: bool, attempts: int = 20) -> tuple[socket.socket, socket.socket]:
        """UDP and TCP on the same port. With port 0 the kernel picks the UDP port, which may
        already be taken for TCP: then try another."""
        for _ in range(attempts):
            try:
                udp = bind_socket(endpoint, socket.SOCK_DGRAM, reuse_port, self._config.udp_receive_buffer)
            except OSError as error:
                raise ListenError(explain_bind_error(endpoint, error)) from None
            port = udp.getsockname()[1]
            try:
                return udp, bind_socket(Endpoint(endpoint.host, port), socket.SOCK_STREAM, reuse_port)
            except OSError as error:
                udp.close()
                if endpoint.port != 0 or error.errno != errno.EADDRINUSE:
                    raise ListenError(explain_bind_error(Endpoint(endpoint.host, port), error)) from None
        raise ListenError(f"{endpoint}: found no port free for both UDP and TCP")

    async def serve(self, pipeline: QueryPipeline) -> None:
        """Start answering on every bound socket."""
        loop = asyncio.get_running_loop()
        config = self._config
        self._tcp = TcpConnections(pipeline, config.tcp_idle_timeout, config.tcp_max_connections, config.tcp_max_per_client)
        for udp, tcp in self._bound:
            listener = UdpListener(udp, pipeline)
            listener.start()
            self._udp.append(listener)
            self._tcp_servers.append(await loop.create_server(self._tcp.protocol, sock=tcp, backlog=TCP_BACKLOG))
        # Announced last: whoever waits for these lines (an admin, a test) may use everything.
        for endpoint in self.addresses:
            log.info("listening for DNS on %s (UDP and TCP)", endpoint)

    def stop_reading(self) -> None:
        """Take no new queries."""
        for listener in self._udp:
            listener.stop_reading()
        for server in self._tcp_servers:
            server.close()

    async def drain(self, timeout: float) -> None:
        """Answer the queries in flight (for at most ``timeout`` seconds)."""
        drains = [listener.drain(timeout) for listener in self._udp]
        if self._tcp is not None:
            drains.append(self._tcp.drain(timeout))
        await asyncio.gather(*drains)

    def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close_all()
        for listener in self._udp:
            listener.close()
        for udp, tcp in self._bound:
            udp.close()
            tcp.close()
        self._bound.clear()


def check_free(endpoint: Endpoint) -> None:
    """Raise ``ListenError`` unless UDP and TCP on ``endpoint`` are free. Bound without
    SO_REUSEPORT, so a port that workers of another filterdns share counts as taken (its
    workers would otherwise let ours join them on the same port)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        try:
            bind_socket(endpoint, kind, reuse_port=False).close()
        except OSError as error:
            raise ListenError(explain_bind_error(endpoint, error)) from None


def bind_socket(endpoint: Endpoint, kind: socket.SocketKind, reuse_port: bool, receive_buffer: int = 0) -> socket.socket:
    """A non-blocking socket bound to ``endpoint``; a TCP one is not listening yet (``serve``
    starts that). IPv6 sockets are v6-only so that ``0.0.0.0`` and ``::`` can be bound side
    by side; TCP gets SO_REUSEADDR as asyncio would give it."""
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if receive_buffer:
            # A burst at the start of a lesson overflows the default buffer (kernel drops).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((endpoint.host, endpoint.port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
