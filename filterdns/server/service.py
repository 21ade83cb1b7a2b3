"""The running service's lifecycle: start, reload on SIGHUP, stop on SIGTERM.

Start binds the DNS sockets before anything else (a port held by another process stops it
before the store is written), then loads the policy, starts the web console, drops root and
starts what writes files or opens outbound sockets, and serves DNS last. What each part does
lives in its own module: the policy in force (``active_policy``), the sockets
(``listeners``), the console (``web_startup``), list downloads (``list_refresh``) and the
jobs over the store (``jobs``). A reload applies the policy and the upstreams; listener
addresses, the cache size and the other node settings need a restart, and the log says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from filterdns.config.loader import ConfigError, load_config
from filterdns.config.model import Config, UpstreamConfig
from filterdns.metrics import Metrics
from filterdns.policy.sources import ListDownloader
from filterdns.private_files import private_tree
from filterdns.resolver.access import NetworkSet, RateLimiter
from filterdns.resolver.cache import AnswerCache
from filterdns.resolver.forward import Forwarder
from filterdns.resolver.pipeline import QueryPipeline
from filterdns.resolver.recorder import Recorder
from filterdns.resolver.upstream import UpstreamPool, describe
from filterdns.server.active_policy import ActivePolicy, lists_cache_dir
from filterdns.server.control import Control
from filterdns.server.encrypted import EncryptedDns
from filterdns.server.health import ServiceHealth
from filterdns.server.jobs import BackgroundJobs
from filterdns.server.list_refresh import download_lists_forever, follow_downloads_forever, has_url_lists
from filterdns.server.listeners import DnsListeners, ListenError
from filterdns.server.policy_sync import PolicySync, PolicyVersion
from filterdns.server.privileges import PrivilegeError, drop_privileges
from filterdns.server.web_startup import WebRunner, start_web_services
from filterdns.store import StoreSink, create_store

log = logging.getLogger("filterdns.service")

DRAIN_TIMEOUT = 5.0
# Node sections read once at start; a change in them is reported as needing a restart.
RESTART_SECTIONS = ("server", "cache", "metrics_listen", "data_dir", "recorder", "store", "web", "log", "doh", "dot")


ConfigReader = Callable[[Path], Config]


class Service:
    """One node's resolver: the parts wired together, and their lifecycle. ``read_config``
    reads the config file again on SIGHUP, with the same command-line flags applied."""

    def __init__(self, config: Config, read_config: ConfigReader = load_config):
        self._read_config = read_config
        self.metrics = Metrics()
        self.cache = AnswerCache(config.node.cache, stale_retention=config.node.cache.serve_stale_max_age)
        self.upstream = UpstreamPool(
            config.node.upstream, observer=self.metrics, max_pending=config.node.server.max_pending_upstream
        )
        # The store connects on first use: a database that is down at start delays nothing.
        self.store = create_store(config.node.store, config.node.data_dir)
        self.store_sink = StoreSink.for_store(self.store)
        self.recorder = Recorder.from_config(config.node.recorder, config.node.log, [self.store_sink])
        self.metrics.watch_recorder(self.recorder)
        self.metrics.watch_cache(self.cache)
        self.metrics.watch_store(self.store_sink)
        self.metrics.watch_health(ServiceHealth(self))
        self.active = ActivePolicy(config, self.metrics, self._config_changed)
        self.sync = PolicySync(
            self.store, config, self.active.activate, self.active.apply_overrides, self.active.apply_home_settings
        )
        self.control = Control(self)
        self.listeners = DnsListeners(config.node.server)
        self.encrypted = EncryptedDns(config)
        self.pipeline: QueryPipeline | None = None
        self.jobs: BackgroundJobs | None = None  # worker 0 only
        self._metrics_runner = None
        self._web_runners: list[WebRunner] = []
        self._background: list[asyncio.Task] = []
        self._retiring: set[UpstreamPool] = set()  # replaced pools finishing their queries
        self.stopped = asyncio.Event()

    @property
    def config(self) -> Config:
        """The configuration in force: the file's node settings with the newest policy."""
        return self.active.config

    async def start(self) -> None:
        """Raises ``ListenError`` (nothing written, nothing started) when a DNS address cannot
        be bound, ``PrivilegeError`` when root cannot be dropped."""
        config = self.config
        self.listeners.bind()
        self.encrypted.bind()
        private_tree(config.node.data_dir)
        log.info("data directory: %s", config.node.data_dir.resolve())
        version = await self.sync.initial()
        policy = await self.active.first(version.config)
        config = version.config
        self.pipeline = QueryPipeline(
            policy.identifier,
            policy.engine,
            policy.blocker,
            Forwarder(self.cache, self.upstream, config.node.cache),
            self.recorder,
            allowed_networks=NetworkSet(config.node.server.allow_networks),
            rate_limiter=RateLimiter(config.node.server.rate_limit, NetworkSet(config.policy.trusted_forwarders)),
            any_queries=config.node.server.any_queries,
        )
        self.active.answer_with(self.pipeline)
        # The console and the block page bind before root is dropped: port 80 and a TLS key
        # readable only by root both need it. With several workers, worker 0 runs them.
        primary = config.node.server.worker_index == 0
        if primary:
            self._web_runners = await start_web_services(self.control, config)
        if config.node.server.user:
            drop_privileges(config.node.server.user, config.node.data_dir)
        # Everything that writes files or opens outbound sockets starts after the switch.
        await self.upstream.start()
        log.info("upstreams: %s", ", ".join(map(describe, config.node.upstream.servers)))
        await self.recorder.start()
        if config.node.metrics_listen is not None and primary:
            self._metrics_runner = await self.metrics.serve(config.node.metrics_listen.host, config.node.metrics_listen.port)
            log.info("metrics on http://%s/metrics", config.node.metrics_listen)
        self._background = self._start_background(primary)
        await self.encrypted.serve(self.pipeline, self.config)
        await self.listeners.serve(self.pipeline)

    def _start_background(self, primary: bool) -> list[asyncio.Task]:
        """Worker 0 downloads lists and runs the jobs; the others follow its downloads.
        Every worker follows the store's policy revisions."""
        tasks = [asyncio.create_task(self.sync.run(), name="policy sync")]
        lists = lists_cache_dir(self.config)
        if not primary:
            tasks.append(asyncio.create_task(follow_downloads_forever(lists, self.active.rebuild_lists)))
            return tasks
        if has_url_lists(self.config):
            downloader = ListDownloader(lists, self.config.node.lists.download_timeout, self.config.node.fetch_allow)
            refresh = download_lists_forever(downloader, lambda: self.config, self.active.rebuild_lists)
            tasks.append(asyncio.create_task(refresh, name="list downloads"))
        self.jobs = BackgroundJobs(self.store, lambda: self.config, children_at_home=self.control.home_profiles.pupils_of)
        return tasks + self.jobs.start()

    def _config_changed(self, config: Config) -> None:
        self.encrypted.config_changed(config)
        if self.jobs is not None:
            self.jobs.config_changed()

    async def reload(self, path: Path | None = None) -> bool:
        """SIGHUP: re-read the config file; its policy becomes a new revision if it changed.
        Returns False (and keeps serving as before) when the new file is invalid."""
        path = path or self.config.node.source
        if path is None:
            log.info("reload asked, but running on the embedded default: nothing to reload")
            return False
        try:
            new_base = await asyncio.to_thread(self._read_config, path)
        except (ConfigError, OSError) as error:
            log.error("reload failed, keeping the running configuration:\n%s", error)
            return False
        self._warn_restart_needed(new_base)
        if new_base.node.upstream != self.config.node.upstream:
            await self._replace_upstreams(new_base.node.upstream)
        try:
            await self.sync.reload_base(new_base)
        except Exception as error:  # the store is down: apply the file's policy locally
            log.warning("the store is not available (%s); applying the file's policy on this node only", error)
            current = self.sync.current
            await self.active.activate(PolicyVersion(new_base, self.sync.file_text(), current.revision_id if current else 0))
        self.recorder.reopen_sinks()
        log.info("configuration reloaded from %s", path)
        return True

    async def _replace_upstreams(self, config: UpstreamConfig) -> None:
        """New upstreams take the next query; queries in flight finish on the old pool, which
        closes once they have all had their time. The cache is emptied: what the old
        upstreams said (a filtering resolver's answers, or an unfiltered one's) is not what
        the new ones would say."""
        old, old_timeout = self.upstream, self.config.node.upstream.timeout
        pool = UpstreamPool(config, observer=self.metrics, max_pending=self.config.node.server.max_pending_upstream)
        await pool.start()
        self.upstream = pool
        if self.pipeline is not None:
            self.pipeline.forwarder.upstream = pool
        self.cache.clear()
        log.info("upstreams changed: now %s", ", ".join(map(describe, config.servers)))
        self._retiring.add(old)
        self._background.append(asyncio.create_task(self._retire(old, after=old_timeout + 0.5)))

    async def _retire(self, pool: UpstreamPool, after: float) -> None:
        """Close a replaced pool once every query sent on it has had its time."""
        await asyncio.sleep(after)
        self._retiring.discard(pool)
        await pool.close()

    def _warn_restart_needed(self, new: Config) -> None:
        old = self.config.node
        for section in RESTART_SECTIONS:
            if getattr(old, section) != getattr(new.node, section):
                log.warning("'%s' changed in the config file; it takes effect after a restart", section)

    async def stop(self) -> None:
        """Stop taking queries, answer those in flight, flush the recorder, close everything."""
        self.listeners.stop_reading()
        self.encrypted.stop_reading()
        for task in self._background:
            task.cancel()
        await asyncio.gather(self.listeners.drain(DRAIN_TIMEOUT), self.encrypted.drain(DRAIN_TIMEOUT))
        self.listeners.close()
        self.encrypted.close()
        try:
            await asyncio.wait_for(self.recorder.close(), DRAIN_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("the query log did not finish writing within %.0f s", DRAIN_TIMEOUT)
        for pool in [self.upstream, *self._retiring]:
            await pool.close()
        self._retiring.clear()
        await self.store.close()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        for runner in self._web_runners:
            await runner.cleanup()
        self.stopped.set()


async def run_service(config: Config, read_config: ConfigReader = load_config) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads (``read_config`` reads the file again).
    Returns the process exit code."""
    service = Service(config, read_config)
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
    except (ListenError, PrivilegeError, OSError) as error:
        log.error("cannot start: %s", error)
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
