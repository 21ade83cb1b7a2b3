"""The SQLite store: the shared contract, plus what only a file on disk can do to it
(locked, made read-only, deleted, moved, full) and proof that the event loop keeps running
while SQLite waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
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


async def test_deleted_database_file_is_recreated(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    sink = StoreSink(store)
    try:
        await sink.write_batch([make_event(T0, "before.test")])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)
        await sink.write_batch([make_event(T0 + 1, "after.test")])
        assert sink.failures == 0 and store.path.exists()
        assert names(await all_events(store)) == ["after.test"]
    finally:
        await store.close()


async def test_moved_database_file_is_replaced_and_the_moved_one_kept_intact(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    try:
        await store.insert_events([make_event(T0, "before.test")])
        moved = tmp_path / "archive.db"
        os.rename(store.path, moved)
        await store.insert_events([make_event(T0 + 1, "after.test")])
        assert names(await all_events(store)) == ["after.test"]
        conn = sqlite3.connect(moved)
        assert conn.execute("SELECT name FROM query_events").fetchall() == [("before.test",)]
        conn.close()
    finally:
        await store.close()


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Files nobody, not even root, may write (``chattr +i``): a read-only database."""
    try:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make files immutable here: {exc}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


async def test_read_only_database_buffers_then_recovers(tmp_path: Path) -> None:
    store = await open_sqlite(tmp_path)
    sink = StoreSink(store, retry_initial=0.02, retry_max=0.1)
    try:
        await sink.write_batch([make_event(T0, "before.test")])
        with immutable(store.path, Path(f"{store.path}-wal")):
            await sink.write_batch([make_event(T0 + 1, "during.test")])
            assert sink.failing and sink.pending == 1
        await wait_until(lambda: sink.pending == 0)
        assert names(await all_events(store)) == ["during.test", "before.test"]
    finally:
        await sink.close()
        await store.close()


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root), to fill up."""
    path.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


async def test_full_disk_buffers_then_recovers(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", "2m") as data_dir:
        store = await open_sqlite(data_dir)
        sink = StoreSink(store, retry_initial=0.02, retry_max=0.1)
        try:
            await sink.write_batch([make_event(T0, "before.test")])
            filler = data_dir / "filler"
            with filler.open("wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
            batch = [make_event(T0 + 1 + i, f"{'x' * 60}{i}.test") for i in range(2000)]
            await sink.write_batch(batch)
            assert sink.failing and sink.pending == 2000 and "full" in str(sink.last_error)
            filler.unlink()
            await wait_until(lambda: sink.pending == 0)
            assert len(await all_events(store)) == 2001
        finally:
            await sink.close()
            await store.close()
