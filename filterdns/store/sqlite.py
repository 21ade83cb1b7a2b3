"""The embedded store: one SQLite file in the data directory.

All sqlite3 calls run on one dedicated worker thread, so the event loop never waits on
the disk and every sqlite3 object stays on the thread that made it (sqlite3's rule).

The file is opened in WAL mode (readers never block the writer) with
``synchronous=NORMAL`` (a power cut may lose the last moments of events, never corrupt
the file). Every write takes the write lock as it starts (a single write statement does
so by itself, a batch by ``BEGIN IMMEDIATE``) and waits up to ``busy_timeout`` for it, so
two processes on one file queue instead of failing.

The store heals itself: any database error drops the connection and the next call
reopens the file; before each call it checks that the file at ``path`` is still the one it
has open — a deleted or replaced file would otherwise swallow writes without an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from filterdns.config.model import StoreConfig
from filterdns.private_files import private_file
from filterdns.store.base import (
    CURRENT_VERSION_SQL,
    RECORD_VERSION_SQL,
    SCHEMA_VERSION_DDL,
    Conflict,
    Row,
    StoreError,
    load_migrations,
    pending_migrations,
)
from filterdns.store.devices import INSERT_DEVICE_SQL
from filterdns.store.events import INSERT_EVENT_SQL, UPSERT_HOURLY_SQL
from filterdns.store.store import Store

T = TypeVar("T")

MIGRATIONS = load_migrations("schema_sqlite.sql")


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (``executescript`` would commit the open
    transaction, and migrations must be all-or-nothing)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:60]}")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the caller drops the connection anyway
            conn.execute("ROLLBACK")


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL mode. The switch needs a moment of exclusive access, and
    SQLite reports "locked" at once rather than waiting when two connections try it
    together (two nodes starting on a new file), so wait here."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date under the write lock: a second process opening the
    same file at the same moment waits, then finds nothing left to do."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA_VERSION_DDL)
        current = conn.execute(CURRENT_VERSION_SQL).fetchone()[0]
        for version, script in pending_migrations(MIGRATIONS, current):
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(RECORD_VERSION_SQL, (version, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


class SQLiteStore(Store):
    def __init__(self, settings: StoreConfig, path: Path) -> None:
        super().__init__(settings)
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="filterdns-store")
        self._closed = False
        # Owned by the worker thread:
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None

    @property
    def location(self) -> str:
        return f"sqlite {sqlite3.sqlite_version} {self.path}"

    # --- on the worker thread ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_file(self.path)  # SQLite gives its -wal and -shm files the database's mode
        for companion in ("-wal", "-shm"):
            if self.path.with_name(self.path.name + companion).exists():
                private_file(self.path.with_name(self.path.name + companion))
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.settings.busy_timeout)
        try:
            conn.row_factory = sqlite3.Row
            _enable_wal(conn, self.settings.busy_timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn)
            stat = os.stat(self.path)
        except BaseException:
            conn.close()
            raise
        self._file_id = (stat.st_dev, stat.st_ino)
        return conn

    def _is_current_file(self) -> bool:
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_dev, stat.st_ino) == self._file_id

    def _drop_connection(self, *, file_gone: bool = False) -> None:
        """Close the connection. If its file was moved or deleted, first move the WAL's
        content into that file and empty the WAL: SQLite does not do so on close then,
        and a new database created at ``path`` would replay the stale WAL into itself."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(sqlite3.Error):  # nothing more to do for a discarded connection
            try:
                if file_gone:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and not self._is_current_file():
            self._drop_connection(file_gone=True)
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _run_job(self, job: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return job(self._connection(), *args)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        except (sqlite3.Error, OSError) as exc:
            self._drop_connection()
            raise StoreError(f"sqlite: {exc}") from exc

    @staticmethod
    def _query_job(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Row]:
        return [dict(row) for row in conn.execute(sql, params).fetchall()]

    @staticmethod
    def _execute_job(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
        return conn.execute(sql, params).rowcount

    @staticmethod
    def _write_events_job(
        conn: sqlite3.Connection,
        events: list[tuple[Any, ...]],
        hourly: list[tuple[Any, ...]],
        devices: list[tuple[Any, ...]],
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT_EVENT_SQL, events)
            conn.executemany(UPSERT_HOURLY_SQL, hourly)
            conn.executemany(INSERT_DEVICE_SQL, devices)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    @staticmethod
    def _no_job(conn: sqlite3.Connection) -> None:
        """Opening the connection (done by ``_run_job``) is the whole job."""

    # --- on the event loop ------------------------------------------------------------

    async def _call(self, job: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_job, job, args)

    async def open(self) -> None:
        await self._call(self._no_job)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._drop_connection)
        self._executor.shutdown(wait=False)

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._call(self._query_job, sql, params)

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._call(self._execute_job, sql, params)

    async def _query_exclusive(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # A single SQLite statement already runs under the database-wide write lock.
        return await self._query(sql, params)

    async def _write_events(
        self, events: list[tuple[Any, ...]], hourly: list[tuple[Any, ...]], devices: list[tuple[Any, ...]]
    ) -> None:
        await self._call(self._write_events_job, events, hourly, devices)
