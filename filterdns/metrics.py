"""Prometheus metrics for filterdns.

Counting happens on the query path, so ``Metrics.observe()`` avoids prometheus_client's
per-call ``labels()`` lookups and locks: it finds one histogram (a plain list of bucket
counts) in a dict keyed by the event's label fields and bumps a bucket. ``Metrics`` is
itself a Collector that folds those into metric families when Prometheus scrapes. State
owned by other components (cache, recorder, store sink) is read at scrape time too, so they need no
knowledge of metrics.

Labels only ever carry names from the configuration or small fixed sets (group, category,
upstream, verdict, query type, answer class). Client addresses and domain names never
become labels: they would leak who visited what and make cardinality unbounded.

All methods are meant for the event-loop thread (as are scrapes served by ``serve()``).
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol

from aiohttp import web
from dnslib import QTYPE
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from filterdns import __version__
from filterdns.resolver.events import QueryEvent
from filterdns.resolver.recorder import Recorder

# Query types worth their own label value; everything else is "other" to bound cardinality.
_QTYPE_LABELS: dict[int, str] = {
    getattr(QTYPE, name): name
    for name in (
        "A", "AAAA", "CNAME", "MX", "TXT", "HTTPS", "SVCB", "PTR", "SRV", "NS", "SOA", "ANY"
    )  # fmt: skip
}
# answered_by values that are their own latency class; any other non-empty value is an
# upstream label, and "" (nobody answered) or an "error" verdict is class "error".
_LOCAL_ANSWER_CLASSES = {"cache": "cache", "policy": "policy", "stale": "stale"}

# From a cache hit (tens of µs) to an upstream timeout (seconds).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

# (verdict, group, qtype label, category, reason, answered_by): all bounded by the
# configuration or by code, never by what clients send.
QueryKey = tuple[str, str, str, str, str, str]

Handler = Callable[[web.Request], Awaitable[web.Response]]


class CacheStats(Protocol):
    """What metrics reads from the answer cache at scrape time."""

    hits: int
    misses: int
    evictions: int

    def __len__(self) -> int: ...


class StoreStats(Protocol):
    """What the store's event sink (``StoreSink``) tells about the store, from memory."""

    down: bool
    dropped: int
    failures: int

    @property
    def pending(self) -> int: ...


class HealthReadings(Protocol):
    """What operators alert on, read from the running service at scrape time: whether each
    upstream is healthy (upstream label -> bool), how many list sources of each category
    failed their last load or download (category -> count), and how many queries rate
    limiting refused or truncated so far."""

    def upstreams_healthy(self) -> Mapping[str, bool]: ...

    def failing_list_sources(self) -> Mapping[str, int]: ...

    def rate_limited(self) -> int: ...


class _Histogram:
    """Bucket counts (non-cumulative, last one is +Inf) and the sum of observations."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left finds the first bound >= seconds, i.e. Prometheus' "le" bucket.
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def add(self, other: _Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.total += other.total

    def exposition_buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs as HistogramMetricFamily wants them."""
        result: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.counts):
            running += count
            result.append((bound, running))
        return result


def _answer_class(verdict: str, answered_by: str) -> str:
    """Latency class: "cache", "policy", "stale", "error" (nobody answered) or "upstream"."""
    if verdict == "error" or not answered_by:
        return "error"
    return _LOCAL_ANSWER_CLASSES.get(answered_by, "upstream")


def _block_label(category: str, reason: str) -> str:
    """Category label for a block: the category, else the reason's leading word (e.g.
    "deny-list") — cut at ":" so a detail appended to a reason can never become a label."""
    return category or reason.partition(":")[0] or "unknown"


def _histogram_family(
    name: str, documentation: str, label: str, histograms: Mapping[str, _Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in list(histograms.items()):
        family.add_metric([value], histogram.exposition_buckets(), histogram.total)
    return family


def _counter_family(
    name: str, documentation: str, labels: list[str], counts: Mapping[tuple[str, ...], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in list(counts.items()):
        family.add_metric(list(values), count)
    return family


class Metrics:
    """All filterdns metrics, in a registry of their own (not prometheus_client's global
    one, so tests and several instances in one process do not collide)."""

    def __init__(self) -> None:
        # One latency histogram per distinct QueryKey; its bucket total is the query count.
        self._queries: dict[QueryKey, _Histogram] = {}
        self._upstream_latency: dict[str, _Histogram] = {}  # upstream label
        self._upstream_errors: dict[tuple[str, str], int] = {}  # (upstream, kind)
        self._list_sizes: dict[str, int] = {}
        self._cache: CacheStats | None = None
        self._recorder: Recorder | None = None
        self._store: StoreStats | None = None
        self._health: HealthReadings | None = None
        self.registry = CollectorRegistry()
        self.registry.register(self)
        ProcessCollector(registry=self.registry)

    # -- feeding ---------------------------------------------------------------------

    def observe(self, event: QueryEvent) -> None:
        """Count one answered query. Runs on the query path (as a recorder listener), so
        it does one dict lookup and one bucket increment; labels are derived at scrape."""
        key = (
            event.verdict,
            event.group,
            _QTYPE_LABELS.get(event.qtype, "other"),
            event.category,
            event.reason,
            event.answered_by,
        )
        histogram = self._queries.get(key)
        if histogram is None:
            histogram = self._queries[key] = _Histogram()
        histogram.observe(event.latency_ms / 1000.0)

    def on_upstream_answer(self, label: str, seconds: float) -> None:
        """Upstream pool observer: ``label`` answered after ``seconds``."""
        histogram = self._upstream_latency.get(label)
        if histogram is None:
            histogram = self._upstream_latency[label] = _Histogram()
        histogram.observe(seconds)

    def on_upstream_error(self, label: str, kind: str) -> None:
        """Upstream pool observer: ``label`` failed; ``kind`` is a short fixed word such as
        ``"timeout"`` (never an exception message, which would be unbounded)."""
        key = (label, kind)
        self._upstream_errors[key] = self._upstream_errors.get(key, 0) + 1

    def set_list_sizes(self, sizes: Mapping[str, int]) -> None:
        """Domains per category after a (re)load; categories no longer present disappear."""
        self._list_sizes = dict(sizes)

    def watch_cache(self, cache: CacheStats) -> None:
        """Export the answer cache's counters, read at scrape time."""
        self._cache = cache

    def watch_store(self, sink: StoreStats) -> None:
        """Export the store's state and its event buffer, read at scrape time."""
        self._store = sink

    def watch_health(self, health: HealthReadings) -> None:
        """Export upstream health, failing list sources and rate limiting, read at scrape time."""
        self._health = health

    def watch_recorder(self, recorder: Recorder) -> None:
        """Count every recorded query and export the recorder's own health counters."""
        self._recorder = recorder
        recorder.add_listener(self.observe)

    # -- exporting -------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """Collector protocol: called by the registry on every scrape."""
        yield from self._collect_queries()
        yield _histogram_family(
            "filterdns_upstream_duration_seconds",
            "Round-trip time of successful upstream queries.",
            "upstream",
            self._upstream_latency,
        )
        yield _counter_family(
            "filterdns_upstream_errors",
            "Failed upstream queries by kind of failure.",
            ["upstream", "kind"],
            self._upstream_errors,
        )
        sizes = GaugeMetricFamily(
            "filterdns_list_domains", "Domains loaded per category.", labels=["category"]
        )
        for category, size in self._list_sizes.items():
            sizes.add_metric([category], size)
        yield sizes
        if self._cache is not None:
            yield from self._collect_cache(self._cache)
        if self._recorder is not None:
            yield from self._collect_recorder(self._recorder)
        if self._store is not None:
            yield from self._collect_store(self._store)
        if self._health is not None:
            yield from self._collect_health(self._health)
        yield InfoMetricFamily(
            "filterdns_build",
            "Version of filterdns and Python.",
            value={"version": __version__, "python": platform.python_version()},
        )

    def _collect_queries(self) -> Iterator[Metric]:
        """Fold the per-QueryKey histograms into the exported query families."""
        queries: dict[tuple[str, str, str], int] = {}
        blocked: dict[tuple[str, str], int] = {}
        latency: dict[str, _Histogram] = {}
        for (verdict, group, qtype, category, reason, answered_by), histogram in list(
            self._queries.items()
        ):
            count = sum(histogram.counts)
            key = (verdict, group, qtype)
            queries[key] = queries.get(key, 0) + count
            if verdict == "blocked":
                block_key = (_block_label(category, reason), group)
                blocked[block_key] = blocked.get(block_key, 0) + count
            latency.setdefault(_answer_class(verdict, answered_by), _Histogram()).add(histogram)
        yield _counter_family(
            "filterdns_queries", "Answered queries.", ["verdict", "group", "qtype"], queries
        )
        yield _counter_family(
            "filterdns_blocked",
            "Blocked queries by category (or block reason when no category applies).",
            ["category", "group"],
            blocked,
        )
        yield _histogram_family(
            "filterdns_query_duration_seconds",
            "Time from receiving a query to sending its answer, by who answered.",
            "answered_by",
            latency,
        )

    @staticmethod
    def _collect_cache(cache: CacheStats) -> Iterator[Metric]:
        yield CounterMetricFamily("filterdns_cache_hits", "Answer cache hits.", cache.hits)
        yield CounterMetricFamily("filterdns_cache_misses", "Answer cache misses.", cache.misses)
        yield CounterMetricFamily(
            "filterdns_cache_evictions", "Entries evicted to make room.", cache.evictions
        )
        yield GaugeMetricFamily(
            "filterdns_cache_entries", "Entries in the answer cache.", len(cache)
        )

    @staticmethod
    def _collect_recorder(recorder: Recorder) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "filterdns_recorder_dropped",
            "Query events dropped because the recorder buffer was full.",
            recorder.dropped,
        )
        yield GaugeMetricFamily(
            "filterdns_recorder_pending", "Query events waiting for the sinks.", recorder.pending
        )
        yield _counter_family(
            "filterdns_recorder_sink_errors",
            "Failed batch writes per event sink.",
            ["sink"],
            {(label,): n for label, n in recorder.sink_errors.items()},
        )
        yield _counter_family(
            "filterdns_recorder_sink_lost_events",
            "Query events lost in failed batch writes per event sink.",
            ["sink"],
            {(label,): n for label, n in recorder.sink_lost.items()},
        )

    @staticmethod
    def _collect_store(sink: StoreStats) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "filterdns_store_up", "1 while the store takes query events, 0 while it fails.", 0 if sink.down else 1
        )
        yield GaugeMetricFamily(
            "filterdns_store_buffered_events", "Query events kept in memory until the store takes them.", sink.pending
        )
        yield CounterMetricFamily(
            "filterdns_store_dropped_events",
            "Query events lost because the store's buffer was full or the store was down at shutdown.",
            sink.dropped,
        )
        yield CounterMetricFamily(
            "filterdns_store_write_failures", "Failed attempts to write query events to the store.", sink.failures
        )

    @staticmethod
    def _collect_health(health: HealthReadings) -> Iterator[Metric]:
        upstreams = GaugeMetricFamily(
            "filterdns_upstream_up", "1 while an upstream answers, 0 once it is marked unhealthy.", labels=["upstream"]
        )
        for label, healthy in health.upstreams_healthy().items():
            upstreams.add_metric([label], 1 if healthy else 0)
        yield upstreams
        failing = GaugeMetricFamily(
            "filterdns_list_sources_failing",
            "List sources of a category whose last load or download failed (the last good copy is in use).",
            labels=["category"],
        )
        for category, count in health.failing_list_sources().items():
            failing.add_metric([category], count)
        yield failing
        yield CounterMetricFamily(
            "filterdns_rate_limited", "Queries refused or truncated by per-client rate limiting.", health.rate_limited()
        )

    def render(self) -> bytes:
        """The exposition text Prometheus scrapes."""
        return generate_latest(self.registry)

    def aiohttp_handler(self) -> Handler:
        """A GET handler serving ``render()``, for mounting /metrics in another aiohttp app."""

        async def handle_metrics(request: web.Request) -> web.Response:
            return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        return handle_metrics

    async def serve(self, endpoint_host: str, port: int) -> web.AppRunner:
        """Serve GET /metrics and GET /healthz; the caller stops it with ``runner.cleanup()``.
        ``runner.addresses`` tells the bound port when ``port`` is 0."""

        async def handle_health(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/metrics", self.aiohttp_handler())
        app.router.add_get("/healthz", handle_health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, endpoint_host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner
