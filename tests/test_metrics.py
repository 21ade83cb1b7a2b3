"""Prometheus metrics: the numbers a scrape shows, and what it must never show."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Sequence

import aiohttp
import pytest
from prometheus_client import REGISTRY, CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from filterdns import __version__
from filterdns.metrics import LATENCY_BUCKETS, Metrics
from filterdns.resolver.events import QueryEvent
from filterdns.resolver.recorder import Recorder
from filterdns.store import StoreConfig, StoreSink, open_store

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def make_event(**changes: object) -> QueryEvent:
    fields: dict[str, object] = dict(
        time=1_700_000_000.0,
        client="198.51.100.23",
        group="class-7a",
        name="www.example.org",
        qtype=1,
        verdict="allowed",
        reason="",
        category="",
        rcode=0,
        latency_ms=0.2,
        answered_by="cache",
        transport="udp",
    )
    fields.update(changes)
    return QueryEvent(**fields)  # type: ignore[arg-type]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


class FakeCache:
    def __init__(self) -> None:
        self.hits = self.misses = self.evictions = 0
        self.entries = 0

    def __len__(self) -> int:
        return self.entries


class FailingSink:
    name = "db"

    async def write_batch(self, events: Sequence[QueryEvent]) -> None:
        raise ConnectionError("database gone")

    async def close(self) -> None:
        pass


async def test_scrape_over_http_shows_query_counts() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.observe(make_event())
    metrics.observe(make_event(qtype=28, group="staff", answered_by="quad9", latency_ms=12.0))
    metrics.observe(make_event(qtype=99))  # an uncommon type folds into "other"
    metrics.observe(
        make_event(verdict="blocked", reason="category:adult", category="adult",
                   answered_by="policy")  # fmt: skip
    )
    metrics.observe(make_event(verdict="blocked", reason="deny-list", answered_by="policy"))

    runner = await metrics.serve("127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.get(f"http://{host}:{port}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
                text = await response.text()
            async with session.get(f"http://{host}:{port}/healthz") as response:
                assert response.status == 200
                assert await response.text() == "ok"
    finally:
        await runner.cleanup()

    samples = parse(text)
    queries = "filterdns_queries_total"
    assert sample(samples, queries, verdict="allowed", group="class-7a", qtype="A") == 3
    assert sample(samples, queries, verdict="allowed", group="staff", qtype="AAAA") == 1
    assert sample(samples, queries, verdict="allowed", group="class-7a", qtype="other") == 1
    assert sample(samples, queries, verdict="blocked", group="class-7a", qtype="A") == 2
    blocked = "filterdns_blocked_total"
    assert sample(samples, blocked, category="adult", group="class-7a") == 1
    assert sample(samples, blocked, category="deny-list", group="class-7a") == 1
    duration = "filterdns_query_duration_seconds_count"
    assert sample(samples, duration, answered_by="cache") == 4
    assert sample(samples, duration, answered_by="upstream") == 1
    assert sample(samples, duration, answered_by="policy") == 2
    build = sample(samples, "filterdns_build_info", version=__version__,
                   python=platform.python_version())  # fmt: skip
    assert build == 1


def test_no_client_address_or_domain_in_exposition() -> None:
    metrics = Metrics()
    secrets = ("203.0.113.77", "2001:db8::77", "secret-forum.example", "de:ad:be:ef:00:01")
    metrics.observe(
        make_event(client=secrets[0], name=secrets[2], mac=secrets[3], verdict="blocked",
                   reason="deny-list:secret-forum.example", answered_by="policy")  # fmt: skip
    )
    metrics.observe(make_event(client=secrets[1], name=secrets[2], transport="tcp"))
    text = metrics.render().decode()
    for secret in secrets:
        assert secret not in text
    # The reason's detail is cut off; its leading word is still a useful label.
    assert sample(parse(text), "filterdns_blocked_total", category="deny-list", group="class-7a")


def test_latency_histogram_buckets_count_and_sum() -> None:
    metrics = Metrics()
    latencies_ms = [0.03, 0.05, 0.06, 1.0, 40.0, 7000.0]
    for latency in latencies_ms:
        metrics.observe(make_event(latency_ms=latency))
    samples = parse(metrics.render().decode())

    def bucket(le: str) -> float:
        name = "filterdns_query_duration_seconds_bucket"
        return sample(samples, name, answered_by="cache", le=le)

    assert bucket("5e-05") == 2  # 0.05 ms sits exactly on the bound: "le" includes it
    assert bucket("0.0001") == 3
    assert bucket("0.001") == 4
    assert bucket("0.05") == 5
    assert bucket("5.0") == 5
    assert bucket("+Inf") == 6
    assert len([key for key in samples if key[0].endswith("_bucket")]) == len(LATENCY_BUCKETS) + 1
    assert sample(samples, "filterdns_query_duration_seconds_count", answered_by="cache") == 6
    total = sample(samples, "filterdns_query_duration_seconds_sum", answered_by="cache")
    assert total == pytest.approx(sum(latencies_ms) / 1000)


def test_answer_classes() -> None:
    metrics = Metrics()
    metrics.observe(make_event(answered_by="stale"))
    metrics.observe(make_event(verdict="error", rcode=2, answered_by="quad9"))
    metrics.observe(make_event(verdict="error", rcode=2, answered_by=""))
    metrics.observe(make_event(verdict="rewritten", reason="safe-search", answered_by="google"))
    samples = parse(metrics.render().decode())
    count = "filterdns_query_duration_seconds_count"
    assert sample(samples, count, answered_by="stale") == 1
    assert sample(samples, count, answered_by="error") == 2
    assert sample(samples, count, answered_by="upstream") == 1
    assert not any(("answered_by", "quad9") in labels for _, labels in samples)


def test_cache_recorder_and_lists_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    cache = FakeCache()
    recorder = Recorder(1, [FailingSink()])
    metrics.watch_cache(cache)
    metrics.watch_recorder(recorder)
    metrics.set_list_sizes({"adult": 120_000, "games": 3_000})

    cache.hits, cache.misses, cache.evictions, cache.entries = 10, 4, 2, 7
    recorder.record(make_event())
    recorder.record(make_event())  # buffer of one is full: dropped, but still counted as query
    samples = parse(metrics.render().decode())
    assert sample(samples, "filterdns_cache_hits_total") == 10
    assert sample(samples, "filterdns_cache_misses_total") == 4
    assert sample(samples, "filterdns_cache_evictions_total") == 2
    assert sample(samples, "filterdns_cache_entries") == 7
    assert sample(samples, "filterdns_recorder_dropped_total") == 1
    assert sample(samples, "filterdns_recorder_pending") == 1
    assert sample(samples, "filterdns_recorder_sink_errors_total", sink="db") == 0
    queries = "filterdns_queries_total"
    assert sample(samples, queries, verdict="allowed", group="class-7a", qtype="A") == 2
    assert sample(samples, "filterdns_list_domains", category="adult") == 120_000

    cache.hits = 11
    metrics.set_list_sizes({"adult": 121_000})
    samples = parse(metrics.render().decode())
    assert sample(samples, "filterdns_cache_hits_total") == 11
    assert sample(samples, "filterdns_list_domains", category="adult") == 121_000
    assert ("filterdns_list_domains", frozenset({("category", "games")})) not in samples


async def test_recorder_sink_failures_are_exported() -> None:
    metrics = Metrics()
    recorder = Recorder(10, [FailingSink()])
    metrics.watch_recorder(recorder)
    recorder.record(make_event())
    recorder.record(make_event())
    await recorder.flush()
    samples = parse(metrics.render().decode())
    assert sample(samples, "filterdns_recorder_sink_errors_total", sink="db") == 1
    assert sample(samples, "filterdns_recorder_sink_lost_events_total", sink="db") == 2


def test_upstream_observer() -> None:
    metrics = Metrics()
    metrics.on_upstream_answer("quad9", 0.012)
    metrics.on_upstream_answer("quad9", 0.3)
    metrics.on_upstream_answer("local-unbound", 0.0004)
    metrics.on_upstream_error("quad9", "timeout")
    metrics.on_upstream_error("quad9", "timeout")
    metrics.on_upstream_error("local-unbound", "refused")
    samples = parse(metrics.render().decode())
    count = "filterdns_upstream_duration_seconds_count"
    assert sample(samples, count, upstream="quad9") == 2
    assert sample(samples, count, upstream="local-unbound") == 1
    assert sample(
        samples, "filterdns_upstream_duration_seconds_bucket", upstream="quad9", le="0.025"
    ) == 1
    errors = "filterdns_upstream_errors_total"
    assert sample(samples, errors, upstream="quad9", kind="timeout") == 2
    assert sample(samples, errors, upstream="local-unbound", kind="refused") == 1


def test_own_registry_leaves_the_global_one_alone() -> None:
    first, second = Metrics(), Metrics()
    first.observe(make_event())
    labels = {"verdict": "allowed", "group": "class-7a", "qtype": "A"}
    assert first.registry.get_sample_value("filterdns_queries_total", labels) == 1
    assert second.registry.get_sample_value("filterdns_queries_total", labels) is None
    assert REGISTRY.get_sample_value("filterdns_queries_total", labels) is None


async def test_store_state_and_buffer_are_exported(tmp_path) -> None:
    """The store's state, its buffer and what it dropped, read from the sink at scrape time:
    here while the SQLite file is moved away, then once it is back."""
    metrics = Metrics()
    store = await open_store(StoreConfig(), tmp_path)
    sink = StoreSink(store, buffer_limit=3, probe_interval=0.02)
    metrics.watch_store(sink)
    try:
        samples = parse(metrics.render().decode())
        assert sample(samples, "filterdns_store_up") == 1
        store.path.rename(tmp_path / "elsewhere.db")
        await sink.write_batch([make_event() for _ in range(5)])
        samples = parse(metrics.render().decode())
        assert sample(samples, "filterdns_store_up") == 0
        assert sample(samples, "filterdns_store_buffered_events") == 3
        assert sample(samples, "filterdns_store_dropped_events_total") == 2
        assert sample(samples, "filterdns_store_write_failures_total") >= 1
        (tmp_path / "elsewhere.db").rename(store.path)
        for _ in range(200):
            if not sink.pending:
                break
            await asyncio.sleep(0.01)
        samples = parse(metrics.render().decode())
        assert sample(samples, "filterdns_store_up") == 1
        assert sample(samples, "filterdns_store_buffered_events") == 0
    finally:
        await sink.close()
        await store.close()


async def test_upstream_health_failing_lists_and_rate_limiting_come_from_the_running_service(tmp_path) -> None:
    """What the alert rules in docs/monitoring/ watch, from a real service: an upstream that
    stops answering is 0, a list file that cannot be read counts as a failing source, and
    queries over the rate limit are counted."""
    from filterdns.config.loader import load_config
    from filterdns.server.service import Service

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "ads.txt").write_text("ads.example\n")
    (tmp_path / "config.yaml").write_text(
        "server: {listen: ['127.0.0.1:0'], rate_limit: {queries_per_second: 1, burst: 1}}\n"
        "upstream: {servers: ['127.0.0.1:9'], timeout: 200ms, failure_threshold: 1}\n"
        "categories:\n  ads: {sources: [{file: lists/ads.txt}]}\n"
    )
    service = Service(load_config(tmp_path / "config.yaml"))
    await service.start()
    try:
        samples = parse(service.metrics.render().decode())
        assert sample(samples, "filterdns_upstream_up", upstream="127.0.0.1:9") == 1
        assert sample(samples, "filterdns_list_sources_failing", category="ads") == 0
        assert sample(samples, "filterdns_rate_limited_total") == 0
        query = bytes.fromhex("abcd01000001000000000000") + b"\x01x\x07example\x00\x00\x01\x00\x01"
        for _ in range(5):  # one client, far over 1 a second
            answer = service.pipeline.answer(query, "127.0.0.9", "udp")
            if asyncio.iscoroutine(answer):  # the first goes upstream: not needed here
                answer.close()
        try:  # nothing listens on the discard port: the upstream fails and is marked down
            await service.upstream.resolve(query)
        except Exception:
            pass
        (tmp_path / "lists" / "ads.txt").unlink()
        await service.active.rebuild_lists()
        samples = parse(service.metrics.render().decode())
        assert sample(samples, "filterdns_upstream_up", upstream="127.0.0.1:9") == 0
        assert sample(samples, "filterdns_list_sources_failing", category="ads") == 1
        assert sample(samples, "filterdns_rate_limited_total") >= 3
    finally:
        await service.stop()
