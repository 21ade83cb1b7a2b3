"""The PostgreSQL store: the shared contract against a real, throwaway PostgreSQL server
(one per module, a fresh database per test), plus what only a server can do to it: go
away and come back, or be down when a node starts. Skipped when PostgreSQL or asyncpg is
not installed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("asyncpg")

from filterdns.resolver.recorder import Recorder  # noqa: E402
from filterdns.store import StoreConfig, StoreError, StoreSink, create_store  # noqa: E402
from filterdns.store.postgres import describe_dsn, numbered  # noqa: E402
from tests.support import stores  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.stores import open_stores  # noqa: E402

pytest.register_assert_rewrite("tests.store_contract")
from tests.store_contract import (  # noqa: E402
    T0,
    StoreContract,
    StoreFactory,
    all_events,
    make_event,
    names,
    wait_until,
)

pg_server = stores.pg_server


@pytest.fixture(scope="module")
def server(pg_server: PostgresServer | None) -> PostgresServer:
    if pg_server is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian package postgresql)")
    return pg_server


@pytest.fixture
async def dsn(server: PostgresServer) -> str:
    """A new, empty database for one test."""
    return await server.new_database()


@pytest.fixture
async def store_factory(dsn: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with open_stores(StoreConfig(backend="postgres", dsn=dsn), tmp_path) as factory:
        yield factory


@contextlib.contextmanager
def server_down(server: PostgresServer) -> Iterator[None]:
    server.stop()
    try:
        yield
    finally:
        server.start()


@pytest.fixture
def outage(server: PostgresServer) -> Any:
    return lambda: server_down(server)


class TestPostgresStore(StoreContract):
    pass


def test_placeholders_are_numbered() -> None:
    assert numbered("SELECT ? WHERE a IN (?, ?) LIMIT ?") == "SELECT $1 WHERE a IN ($2, $3) LIMIT $4"


def test_dsn_description_hides_credentials() -> None:
    assert describe_dsn("postgresql://filterdns:s3cret@db.school.test:5433/dns") == (
        "postgresql db.school.test:5433/dns")
    assert "s3cret" not in describe_dsn("host=db password=s3cret")


async def test_node_started_while_the_server_is_down_catches_up(
    server: PostgresServer, dsn: str, tmp_path: Any
) -> None:
    settings = StoreConfig(backend="postgres", dsn=dsn, node="late", connect_timeout=2.0)
    with server_down(server):
        store = create_store(settings, tmp_path)
        with pytest.raises(StoreError):
            await store.open()
        assert not (await store.health()).ok
        sink = StoreSink(store, probe_interval=0.02)
        await sink.write_batch([make_event(T0, "while-down.test")])
        assert sink.failing and sink.pending == 1
    try:
        await wait_until(lambda: sink.pending == 0)
        assert names(await all_events(store)) == ["while-down.test"]
        assert (await store.health()).ok
    finally:
        await sink.close()
        await store.close()


async def test_two_nodes_see_each_others_policy_revisions(store_factory: StoreFactory) -> None:
    a = await store_factory("node-a")
    b = await store_factory("node-b")
    assert await b.latest_revision_id() == 0
    revision = await a.add_revision("groups: {}\n", "alice")
    assert await b.latest_revision_id() == revision
    latest = await b.latest_revision()
    assert latest is not None and latest.node == "node-a"


async def test_a_hung_server_loses_no_events_and_is_reported_once(
    server: PostgresServer, dsn: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stopped (SIGSTOP) for 3 s under 1,000 events a second: the recorder never
    waits on it, the sink keeps every event, one WARNING says the store is down and one INFO
    that it is back, health answers from memory at once, and the backlog drains at once."""
    caplog.set_level(logging.INFO, logger="filterdns")
    store = create_store(StoreConfig(backend="postgres", dsn=dsn, call_timeout=1.0, connect_timeout=1.0), tmp_path)
    await store.open()
    sink = StoreSink.for_store(store)
    recorder = Recorder(2_000, [sink], batch_size=500, flush_interval=0.05)  # less than the 3 s of events
    await recorder.start()
    health_times: list[float] = []
    sent = 0

    async def load(seconds: float) -> None:  # 10 events every 10 ms
        nonlocal sent
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(10):
                recorder.record(make_event(T0 + sent * 0.001, f"e{sent}.test"))
                sent += 1
            started = time.monotonic()
            await asyncio.sleep(0)  # a health request waits for the event loop, then reads memory
            health = sink.health()
            health_times.append(time.monotonic() - started)
            assert health["buffered"] <= 50_000
            await asyncio.sleep(0.01)

    try:
        await load(0.5)
        with server.hung():
            await load(3.0)
            assert sink.down and sink.health()["detail"] == "no answer within 1 s"
        resumed = time.monotonic()
        await load(0.5)
        await wait_until(lambda: sink.pending == 0 and recorder.pending == 0, timeout=5.0)
        drained_after = time.monotonic() - resumed
        await recorder.close()
        assert (recorder.dropped, sink.dropped) == (0, 0)
        assert not sink.down and sink.last_error is None
        rows = await store._query("SELECT count(*) AS n, count(DISTINCT name) AS names FROM query_events")
        assert rows[0]["n"] == rows[0]["names"] == sent
        lines = [(r.levelname, r.getMessage()) for r in caplog.records
                 if r.name.startswith("filterdns") and r.levelno >= logging.INFO]
        assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
        assert lines[0][1].startswith(f"store {store.location} is not taking query events (no answer within 1 s)")
        assert lines[1][1].startswith(f"store {store.location} takes query events again after")
        assert max(health_times) < 0.1
        assert drained_after < 3.0  # about 1 s here, the last 0.5 s of load included
    finally:
        await sink.close()
        await store.close()


def test_a_timeout_is_told_in_words() -> None:
    """A hung server's timeouts carry no message of their own; the store's error says what
    happened instead of "postgresql: TimeoutError" (seen in a 20 s SIGSTOP drill)."""
    from filterdns.store.base import StoreError
    from filterdns.store.postgres import _translated_errors

    with pytest.raises(StoreError, match="postgresql: the server did not answer in time"):
        with _translated_errors():
            raise TimeoutError()
    with pytest.raises(StoreError, match="postgresql: connection refused"):
        with _translated_errors():
            raise OSError("connection refused")
