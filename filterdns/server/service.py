"""The running service: builds every stage from the config, binds the listeners, reloads on
SIGHUP and drains on SIGTERM.

Reload builds the new policy (lists, groups, schedules) completely, off the event loop, and
then swaps it in with plain assignments between two packets: queries keep flowing and none is
answered by a half-built policy. Listener addresses, upstreams and the cache are kept across
a reload; changing them needs a restart, and the log says so.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from filterdns.config.loader import ConfigError, load_config
from filterdns.config.model import Config, Endpoint
from filterdns.metrics import Metrics
from filterdns.policy.build_process import build_in_child
from filterdns.policy.categories import (
    CategorySet,
    ListStamp,
    build_category_set,
    local_list_stamp,
    release_free_memory,
)
from filterdns.policy.engine import PolicyEngine
from filterdns.policy.groups import GroupResolver
from filterdns.policy.sources import ListDownloader
from filterdns.resolver.access import NetworkSet, RateLimiter
from filterdns.resolver.blocking import BlockResponder
from filterdns.resolver.cache import AnswerCache
from filterdns.resolver.forward import Forwarder
from filterdns.resolver.identify import ClientIdentifier
from filterdns.resolver.pipeline import QueryPipeline
from filterdns.resolver.recorder import Recorder
from filterdns.resolver.upstream import UpstreamPool
from filterdns.server.control import Control
from filterdns.server.jobs import BackgroundJobs
from filterdns.server.policy_sync import PolicySync, PolicyVersion, override_rules
from filterdns.server.privileges import PrivilegeError, drop_privileges
from filterdns.server.tcp import TcpConnections
from filterdns.server.udp import UdpListener, bind_udp
from filterdns.store import Override, StoreSink, create_store

log = logging.getLogger("filterdns.service")

DRAIN_TIMEOUT = 5.0
RETENTION_INTERVAL = 3600.0
LIST_FOLLOW_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything a reload replaces, built before it is swapped in."""

    categories: CategorySet
    engine: PolicyEngine
    blocker: BlockResponder
    identifier: ClientIdentifier


def build_policy(config: Config, categories: CategorySet | None = None) -> Policy:
    """Load the lists (unless ``categories`` are given: a policy edit that leaves them alone
    reuses the index) and compile groups and schedules. Slow for big lists: run in a thread."""
    if categories is None:
        categories = build_category_set(config.categories, lists_cache_dir(config), _base_dir(config))
    return Policy(
        categories=categories,
        engine=PolicyEngine(config, categories),
        blocker=BlockResponder(config),
        identifier=ClientIdentifier(
            GroupResolver(config.groups, config.default_group), NetworkSet(config.trusted_forwarders)
        ),
    )


def lists_cache_dir(config: Config) -> Path:
    return config.data_dir / "lists"


def _base_dir(config: Config) -> Path:
    return config.source.resolve().parent if config.source is not None else Path.cwd()


class Service:
    def __init__(self, config: Config):
        self.config = config
        self.metrics = Metrics()
        self.cache = AnswerCache(config.cache, stale_retention=config.cache.serve_stale_max_age)
        self.upstream = UpstreamPool(
            config.upstream, observer=self.metrics, max_pending=config.server.max_pending_upstream
        )
        # The store connects on first use: a database that is down at start delays nothing.
        self.store = create_store(config.store, config.data_dir)
        self.store_sink = StoreSink.for_store(self.store)
        self.recorder = Recorder.from_config(config.recorder, config.log, [self.store_sink])
        self.metrics.watch_recorder(self.recorder)
        self.metrics.watch_cache(self.cache)
        self.downloader = ListDownloader(lists_cache_dir(config), config.lists.download_timeout)
        self.pipeline: QueryPipeline | None = None
        self.policy: Policy | None = None
        self.sync = PolicySync(self.store, config, self._activate, self._apply_overrides)
        self.overrides: list[Override] = []
        self.control = Control(self)
        self._udp: list[UdpListener] = []
        self._tcp = None
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._metrics_runner = None
        self._web_runners: list = []
        self._background: list[asyncio.Task] = []
        self.jobs: BackgroundJobs | None = None  # worker 0 only
        self._reload_lock = asyncio.Lock()
        self._lists_stamp: ListStamp = ()  # the local list files the current index was built from
        self.stopped = asyncio.Event()

    @property
    def udp_addresses(self) -> list[tuple]:
        return [listener.address for listener in self._udp]

    @property
    def tcp_addresses(self) -> list[tuple]:
        return [sock.getsockname() for server in self._tcp_servers for sock in server.sockets]

    async def start(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        version = await self.sync.initial()
        self.config = config = version.config
        self.policy = await self._build_policy(config)
        self._log_policy(self.policy)
        self.metrics.set_list_sizes(_list_sizes(self.policy.categories))
        self.pipeline = QueryPipeline(
            self.policy.identifier,
            self.policy.engine,
            self.policy.blocker,
            Forwarder(self.cache, self.upstream, config.cache),
            self.recorder,
            allowed_networks=NetworkSet(config.server.allow_networks),
            rate_limiter=RateLimiter(config.server.rate_limit, NetworkSet(config.trusted_forwarders)),
            any_queries=config.server.any_queries,
        )
        self._tcp = TcpConnections(
            self.pipeline,
            config.server.tcp_idle_timeout,
            config.server.tcp_max_connections,
            config.server.tcp_max_per_client,
        )
        reuse_port = config.server.workers > 1
        for endpoint in config.server.listen:
            udp_sock, server = await self._bind_pair(endpoint, reuse_port)
            listener = UdpListener(udp_sock, self.pipeline)
            listener.start()
            self._udp.append(listener)
            self._tcp_servers.append(server)
        # The console and the block page bind before root is dropped: port 80 and a TLS key
        # readable only by root both need it. With several workers, worker 0 runs them.
        primary = config.server.worker_index == 0
        if primary:
            await self._start_web()
        if config.server.user:
            drop_privileges(config.server.user, config.data_dir)
        # Everything that writes files or opens outbound sockets starts after the switch.
        await self.upstream.start()
        await self.recorder.start()
        if config.metrics_listen is not None and primary:
            self._metrics_runner = await self.metrics.serve(config.metrics_listen.host, config.metrics_listen.port)
            log.info("metrics on http://%s/metrics", config.metrics_listen)
        if primary and any(source.is_url for category in config.categories for source in category.sources):
            self._background.append(asyncio.create_task(self._refresh_lists_forever()))
        if primary:
            self._background.append(asyncio.create_task(self._enforce_retention_forever()))
            self.jobs = BackgroundJobs(self.store, lambda: self.config)
            self._background.extend(self.jobs.start())
        else:
            self._background.append(asyncio.create_task(self._follow_list_downloads()))
        self._background.append(asyncio.create_task(self.sync.run()))
        # Announced last: whoever waits for these lines (an admin, a test) may use everything.
        for listener in self._udp:
            host, port = listener.address[:2]
            log.info("listening for DNS on %s (UDP and TCP)", Endpoint(host, port))

    async def _bind_pair(self, endpoint: Endpoint, reuse_port: bool, attempts: int = 20):
        """Bind UDP and TCP on the same port. With port 0 the kernel picks the UDP port, which
        may already be taken for TCP: then try another."""
        loop = asyncio.get_running_loop()
        tries = 0
        while True:
            udp_sock = bind_udp(endpoint, self.config.server.udp_receive_buffer, reuse_port)
            try:
                server = await loop.create_server(
                    self._tcp.protocol,
                    host=endpoint.host,
                    port=udp_sock.getsockname()[1],
                    reuse_port=reuse_port or None,
                    backlog=1024,
                )
                return udp_sock, server
            except OSError as error:
                udp_sock.close()
                tries += 1
                if endpoint.port != 0 or error.errno != errno.EADDRINUSE or tries >= attempts:
                    raise

    # -- policy --------------------------------------------------------------------------

    @property
    def revision_id(self) -> int:
        return self.sync.current.revision_id if self.sync.current else 0

    @property
    def policy_text(self) -> str:
        return self.sync.current.text if self.sync.current else ""

    def require_policy(self) -> Policy:
        if self.policy is None:
            raise RuntimeError("the service has not started")
        return self.policy

    def list_sizes(self) -> dict[str, int]:
        return _list_sizes(self.require_policy().categories)

    async def apply_policy_text(self, text: str, *, author: str, comment: str) -> int:
        """A policy edit from the console: validated, stored, applied here at once."""
        return await self.sync.propose(text, author=author, comment=comment)

    async def sync_overrides(self) -> None:
        await self.sync.sync_overrides()

    async def reload(self, path: Path | None = None) -> bool:
        """SIGHUP: re-read the config file; its policy becomes a new revision if it changed.
        Returns False (and keeps serving as before) when the new file is invalid."""
        path = path or self.config.source
        if path is None:
            log.info("reload asked, but running on the embedded default: nothing to reload")
            return False
        try:
            new_base = await asyncio.to_thread(load_config, path)
        except (ConfigError, OSError) as error:
            log.error("reload failed, keeping the running configuration:\n%s", error)
            return False
        self._warn_restart_needed(new_base)
        try:
            await self.sync.reload_base(new_base)
        except Exception as error:  # the store is down: apply the file's policy locally
            log.warning("the store is not available (%s); applying the file's policy on this node only", error)
            await self._activate(PolicyVersion(new_base, self.sync.file_text(), self.revision_id))
        self.recorder.reopen_sinks()
        log.info("configuration reloaded from %s", path)
        return True

    async def _activate(self, version: PolicyVersion) -> None:
        """Build the policy for ``version`` off the event loop, then swap it in."""
        async with self._reload_lock:
            same_lists = (
                self.policy is not None
                and version.config.categories == self.config.categories
                and local_list_stamp(version.config.categories, _base_dir(version.config)) == self._lists_stamp
            )
            categories = self.policy.categories if same_lists and self.policy else None
            policy = await self._build_policy(version.config, categories)
            self.config = version.config
            self._swap(policy)
            if self.jobs is not None:
                self.jobs.config_changed()

    async def _build_policy(self, config: Config, categories: CategorySet | None = None) -> Policy:
        """Build a policy without stalling DNS: the lists are parsed and indexed in a child
        process (see ``build_process``); only the small rest is built in a thread."""
        if categories is None and config.categories:
            self._lists_stamp = local_list_stamp(config.categories, _base_dir(config))
            categories = await build_in_child(
                config.categories,
                lists_cache_dir(config),
                _base_dir(config),
                log_level=logging.getLevelName(logging.getLogger().level).lower(),
                log_format=config.log.format,
            )
        policy = await asyncio.to_thread(build_policy, config, categories)
        # What is built at load time lives until the next reload: keep the garbage collector's
        # full passes from walking it (they caused 100+ ms pauses with large lists).
        gc.collect()
        gc.freeze()
        return policy

    def _apply_overrides(self, overrides: list[Override]) -> None:
        self.overrides = overrides
        if self.policy is not None:
            self.policy.engine.set_overrides(override_rules(overrides))

    async def rebuild_lists(self) -> None:
        """Rebuild the category index from the lists on disk (after a download)."""
        async with self._reload_lock:
            policy = await self._build_policy(self.config)
            self._swap(policy)

    def _swap(self, policy: Policy) -> None:
        policy.engine.set_overrides(override_rules(self.overrides))
        if self.pipeline is not None:
            self.pipeline.replace_policy(policy.engine, policy.blocker, policy.identifier)
            self.pipeline.rate_limiter.set_exempt(NetworkSet(self.config.trusted_forwarders))
        self.policy = policy
        self.metrics.set_list_sizes(_list_sizes(policy.categories))
        self._log_policy(policy)
        release_free_memory()

    async def _refresh_lists_forever(self) -> None:
        while True:
            try:
                if await self.downloader.refresh(self.config.categories):
                    await self.rebuild_lists()
            except Exception:
                log.exception("list refresh failed; keeping the lists in use")
            await asyncio.sleep(self.config.lists.refresh_interval)

    async def _start_web(self) -> None:
        """Start the staff console and the block page. Neither is worth stopping DNS for: a
        failure is logged and DNS carries on."""
        from filterdns.web import start_web  # the web stack is only imported when it is used
        from filterdns.web.blockpage import start_blockpage

        web_config = self.config.web
        if web_config.listen is not None:
            try:
                self._web_runners.append(
                    await start_web(
                        self.control,
                        web_config.listen.host,
                        web_config.listen.port,
                        tls_cert=web_config.tls_cert,
                        tls_key=web_config.tls_key,
                        settings=web_config.settings,
                    )
                )
            except OSError as error:
                log.error("the staff console could not start on %s: %s", web_config.listen, _explain_bind_error(error))
        for endpoint in self._blockpage_endpoints():
            try:
                runner = await start_blockpage(self.control, endpoint.host, endpoint.port)
            except OSError as error:
                log.error("the block page could not start on %s: %s", endpoint, _explain_bind_error(error))
                continue
            self._web_runners.append(runner)
            host, port = runner.addresses[0][:2]
            log.info("block page on http://%s/", Endpoint(host, port))

    def _blockpage_endpoints(self) -> list[Endpoint]:
        if self.config.web.blockpage_listen is not None:
            return [self.config.web.blockpage_listen]
        blocking = self.config.blocking
        uses_page = blocking.mode == "blockpage" or any(g.block_mode == "blockpage" for g in self.config.groups)
        return [Endpoint(a, 80) for a in (blocking.page_ipv4, blocking.page_ipv6) if a] if uses_page else []

    async def _follow_list_downloads(self) -> None:
        """Workers other than 0 do not download; they rebuild when worker 0 has stored new
        copies of the lists."""
        seen = _newest_copy(lists_cache_dir(self.config))
        while True:
            await asyncio.sleep(LIST_FOLLOW_INTERVAL)
            newest = _newest_copy(lists_cache_dir(self.config))
            if newest > seen:
                seen = newest
                await self.rebuild_lists()

    async def _enforce_retention_forever(self) -> None:
        while True:
            try:
                deleted = await self.store.enforce_retention()
                if any(deleted.values()):
                    log.info("retention: deleted %s", ", ".join(f"{n} {kind}" for kind, n in deleted.items() if n))
            except Exception as error:  # the store may be down; DNS goes on regardless
                log.warning("retention could not run: %s", error)
            await asyncio.sleep(RETENTION_INTERVAL)

    async def stop(self) -> None:
        """Stop taking queries, answer those in flight, flush the recorder, close everything."""
        for listener in self._udp:
            listener.stop_reading()
        for server in self._tcp_servers:
            server.close()
        for task in self._background:
            task.cancel()
        drains = [listener.drain(DRAIN_TIMEOUT) for listener in self._udp]
        if self._tcp is not None:
            drains.append(self._tcp.drain(DRAIN_TIMEOUT))
        await asyncio.gather(*drains)
        if self._tcp is not None:
            self._tcp.close_all()
        for listener in self._udp:
            listener.close()
        try:
            await asyncio.wait_for(self.recorder.close(), DRAIN_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("the query log did not finish writing within %.0f s", DRAIN_TIMEOUT)
        await self.upstream.close()
        await self.store.close()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        for runner in self._web_runners:
            await runner.cleanup()
        self.stopped.set()

    def _warn_restart_needed(self, new: Config) -> None:
        old = self.config
        for section in ("server", "upstream", "cache", "metrics_listen", "data_dir", "recorder", "store", "web", "log"):
            if getattr(old, section) != getattr(new, section):
                log.warning("'%s' changed in the config file; it takes effect after a restart", section)

    @staticmethod
    def _log_policy(policy: Policy) -> None:
        log.info(
            "policy ready: %d groups, %d categories, %d listed domains",
            len(policy.engine.group_names),
            len(policy.categories.names),
            len(policy.categories.index),
        )


def _newest_copy(folder: Path) -> float:
    """Modification time of the newest file in ``folder`` (0 when there is none)."""
    try:
        return max((entry.stat().st_mtime for entry in folder.iterdir()), default=0.0)
    except OSError:
        return 0.0


def _list_sizes(categories: CategorySet) -> dict[str, int]:
    sizes: dict[str, int] = {name: 0 for name in categories.names}
    for status in categories.statuses:
        sizes[status.category] = sizes.get(status.category, 0) + status.entries
    return sizes


async def run_service(config: Config) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. Returns the process exit code."""
    service = Service(config)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    reload_requested = asyncio.Event()
    # Handlers go in before the listeners open, so a signal sent as soon as the service
    # answers is never met by Python's default action (SIGHUP would kill the process).
    loop.add_signal_handler(signal.SIGTERM, stop_requested.set)
    loop.add_signal_handler(signal.SIGINT, stop_requested.set)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    try:
        await service.start()
    except PrivilegeError as error:
        log.error("cannot start: %s", error)
        await service.stop()
        return 1
    except OSError as error:
        log.error("cannot start: %s", _explain_bind_error(error))
        await service.stop()
        return 1
    log.info("filterdns is running (pid %d)", os.getpid())
    reloader = asyncio.create_task(_reload_on_request(service, reload_requested))
    await stop_requested.wait()
    log.info("stopping: answering queries in flight, then exiting")
    reloader.cancel()
    await service.stop()
    return 0


async def _reload_on_request(service: Service, requested: asyncio.Event) -> None:
    while True:
        await requested.wait()
        requested.clear()
        await service.reload()


def _explain_bind_error(error: OSError) -> str:
    if error.errno == 13:
        return f"{error} — ports below 1024 need root or CAP_NET_BIND_SERVICE; try --listen 127.0.0.1:5353"
    if error.errno == 98:
        return f"{error} — another program (systemd-resolved? dnsmasq?) already uses that address and port"
    return str(error)
