"""The SQLite store: the shared contract, plus what only a file on disk can do to it
(locked, made read-only, deleted, moved, full) and proof that the event loop keeps running
while SQLite waits. Read-only and full are made by SQLite itself (see ``FailingSQLiteStore``),
so those tests run without privileges and never skip."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from filterdns.store import StoreConfig, StoreError, StoreSink, open_store
from filterdns.store.base import load_migrations
from filterdns.store.sqlite import SQLiteStore
from tests.support.stores import open_stores

pytest.register_assert_rewrite("tests.store_contract")
from tests.store_contract import (  # noqa: E402  (after the assert-rewrite registration)
    T0,
    StoreContract,
    StoreFactory,
    all_events,
    make_event,
    names,
    wait_until,
)


async def open_sqlite(data_dir: Path, **settings: Any) -> SQLiteStore:
    store = await open_store(StoreConfig(**settings), data_dir)
    assert isinstance(store, SQLiteStore)
    return store


@pytest.fixture
async def store_factory(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with open_stores(StoreConfig(), tmp_path) as factory:
        yield factory


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Another process's long write transaction, holding the database's write lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("COMMIT")
        conn.close()


@pytest.fixture
def outage(tmp_path: Path) -> Any:
    return lambda: exclusive_lock(tmp_path / "filterdns.db")


class TestSQLiteStore(StoreContract):
    pass


async def test_file_is_in_wal_mode_in_the_data_dir(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path / "data")
    try:
        assert store.path == tmp_path / "data" / "filterdns.db"
        conn = sqlite3.connect(store.path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        latest = load_migrations("schema_sqlite.sql")[-1][0]
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(v,) for v in range(1, latest + 1)]
        conn.close()
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    await store.close()
    conn = sqlite3.connect(tmp_path / "filterdns.db")
    conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await open_store(StoreConfig(), tmp_path)


async def test_waiting_for_a_lock_does_not_block_the_event_loop(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path, busy_timeout=0.3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        with exclusive_lock(store.path), pytest.raises(StoreError, match="locked"):
            await store.insert_events([make_event()])
        assert ticks >= 10  # about 30 while SQLite waited 0.3 s
    finally:
        task.cancel()
        await store.close()


def store_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("filterdns.store")]


async def test_moved_database_file_is_not_replaced_and_nothing_is_lost_once_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_sqlite(tmp_path)
    sink = StoreSink(store, probe_interval=0.02)
    moved = tmp_path / "archive.db"
    try:
        await sink.write_batch([make_event(T0, "before.test")])
        os.rename(store.path, moved)  # an operator's mv, while serving, the folder writable
        await sink.write_batch([make_event(T0 + 1, "during.test")])
        await asyncio.sleep(0.2)  # several attempts, each finding the file gone
        await sink.write_batch([make_event(T0 + 2, "later.test")])
        assert sink.down and sink.pending == 2 and sink.failures >= 3
        assert not store.path.exists()  # no new, empty database took its place
        assert store_errors(caplog) == [
            f"store stopped: the database file {store.path} is gone (moved or deleted); put it back; "
            "nothing is written until then (no new database is created)"
        ]
        with pytest.raises(StoreError, match="gone"):  # the console's reads say so too
            await store.list_users()
        os.rename(moved, store.path)
        await wait_until(lambda: sink.pending == 0)
        assert not sink.down and sink.last_error is None
        assert names(await all_events(store)) == ["later.test", "during.test", "before.test"]
    finally:
        await sink.close()
        await store.close()


async def test_deleted_database_file_is_not_recreated_but_a_copy_of_it_is_taken_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_sqlite(tmp_path)
    sink = StoreSink(store, probe_interval=0.02)
    backup = tmp_path / "backup.db"
    try:
        await sink.write_batch([make_event(T0, "before.test")])
        copy = sqlite3.connect(backup)
        sqlite3.connect(store.path).backup(copy)
        copy.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)
        await sink.write_batch([make_event(T0 + 1, "during.test")])
        assert sink.down and not store.path.exists()
        # Another store's file at the path is refused, and said to be another store.
        other = await open_sqlite(tmp_path / "other")
        await other.close()
        os.rename(other.path, store.path)
        await asyncio.sleep(0.1)
        assert sink.down and "holds another store" in str(sink.last_error)
        store.path.unlink()
        os.rename(backup, store.path)  # the same store, restored from its backup
        await wait_until(lambda: sink.pending == 0)
        assert names(await all_events(store)) == ["during.test", "before.test"]
        assert [m.split(";")[0].split(" (id")[0] for m in store_errors(caplog)] == [
            f"store stopped: the database file {store.path} is gone (moved or deleted)",
            f"store stopped: the database file {store.path} holds another store",
        ]
    finally:
        await sink.close()
        await store.close()


class FailingSQLiteStore(SQLiteStore):
    """The SQLite store whose connection SQLite itself makes fail on demand, as root or not
    and in any container: ``read-only`` is ``PRAGMA query_only`` ("attempt to write a
    readonly database"), ``full`` is ``PRAGMA max_page_count`` at the file's current size
    ("database or disk is full"). The store drops its connection after every error and
    reconnects, so the fault is set again on each new connection until it is cleared."""

    fault: str | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        self._set_fault(conn)
        return conn

    def _set_fault(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA query_only = {int(self.fault == 'read-only')}")
        size = conn.execute("PRAGMA page_count").fetchone()[0] if self.fault == "full" else 0xFFFFFFFE
        conn.execute(f"PRAGMA max_page_count = {size}")

    async def fail(self, fault: str | None) -> None:
        self.fault = fault
        await self._call(self._set_fault)


async def open_failing(data_dir: Path) -> FailingSQLiteStore:
    store = FailingSQLiteStore(StoreConfig(), data_dir / "filterdns.db")
    await store.open()
    return store


async def test_read_only_database_buffers_then_recovers(tmp_path: Path) -> None:
    store = await open_failing(tmp_path)
    sink = StoreSink(store, probe_interval=0.02)
    try:
        await sink.write_batch([make_event(T0, "before.test")])
        await store.fail("read-only")
        await sink.write_batch([make_event(T0 + 1, "during.test")])
        assert sink.failing and sink.pending == 1 and "readonly" in str(sink.last_error)
        await asyncio.sleep(0.3)  # several retries, each on a new read-only connection
        assert sink.failing and sink.pending == 1 and sink.failures >= 2
        store.fault = None
        await wait_until(lambda: sink.pending == 0)
        assert names(await all_events(store)) == ["during.test", "before.test"]
    finally:
        await sink.close()
        await store.close()


async def test_full_disk_buffers_then_recovers(tmp_path: Path) -> None:
    store = await open_failing(tmp_path)
    sink = StoreSink(store, probe_interval=0.02)
    try:
        await sink.write_batch([make_event(T0, "before.test")])
        await store.fail("full")
        batch = [make_event(T0 + 1 + i, f"{'x' * 60}{i}.test") for i in range(2000)]
        await sink.write_batch(batch)
        assert sink.failing and sink.pending == 2000 and "full" in str(sink.last_error)
        await asyncio.sleep(0.3)
        assert sink.failing and sink.pending == 2000 and sink.failures >= 2
        store.fault = None
        await wait_until(lambda: sink.pending == 0)
        assert len(await all_events(store)) == 2001
    finally:
        await sink.close()
        await store.close()


async def test_api_tokens_work_while_last_used_cannot_be_written(tmp_path: Path) -> None:
    store = await open_failing(tmp_path)
    try:
        await store.create_user("ada", "admin", "hash")
        await store.create_api_token("tok-hash", "ada", "script", now=T0)
        assert (await store.use_api_token("tok-hash", now=T0 + 1)).last_used == T0 + 1
        await store.fail("read-only")  # as a full disk does: reads work, writes fail
        token = await store.use_api_token("tok-hash", now=T0 + 2)
        assert token is not None and token.user == "ada" and token.last_used == T0 + 1
        assert await store.use_api_token("unknown") is None
    finally:
        await store.close()


class StallingSQLiteStore(SQLiteStore):
    """Its event writes wait for ``release`` before they commit: a database that takes a
    write and answers long after the deadline."""

    def __init__(self, path: Path) -> None:
        super().__init__(StoreConfig(), path)
        self.release = threading.Event()

    def _write_events_job(self, conn: sqlite3.Connection, *rows: Any) -> None:  # type: ignore[override]
        self.release.wait(10)
        SQLiteStore._write_events_job(conn, *rows)


async def test_a_write_answering_after_the_deadline_is_waited_for_not_written_twice(tmp_path: Path) -> None:
    store = StallingSQLiteStore(tmp_path / "filterdns.db")
    await store.open()
    sink = StoreSink(store, probe_interval=0.02, deadline=0.1)
    try:
        await sink.write_batch([make_event(T0, "late.test")])
        await asyncio.sleep(0.4)  # several attempts, each waiting for the same write
        assert sink.down and sink.last_error == "no answer within 0.1 s" and sink.pending == 1
        store.release.set()
        await wait_until(lambda: sink.pending == 0)
        assert not sink.down and names(await all_events(store)) == ["late.test"]
    finally:
        store.release.set()
        await sink.close()
        await store.close()
