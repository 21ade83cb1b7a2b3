"""The embedded store: one SQLite file in the data directory.

All sqlite3 calls run on one dedicated worker thread, so the event loop never waits on
the disk and every sqlite3 object stays on the thread that made it (sqlite3's rule).

The file is opened in WAL mode (readers never block the writer) with
``synchronous=NORMAL`` (a power cut may lose the last moments of events, never corrupt
the file). Every write takes the write lock as it starts (a single write statement does
so by itself, a batch by ``BEGIN IMMEDIATE``) and waits up to ``busy_timeout`` for it, so
two processes on one file queue instead of failing.

The store heals itself: any database error drops the connection and the next call
reopens the file. It also keeps its identity: a store id written into the file when it is
created, and the file's device and inode. Before each call it checks that the file at
``path`` is still the one it has open; if the file was moved or deleted while serving, it
refuses to work (logging an ERROR that names the path) rather than create an empty database
in its place, which would hide users, revisions and audit and split the events across two
files. Only the first open of a process creates the file. Once the file is back (moved
back, or restored from a copy with the same store id), the store works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
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
    error_text,
    load_migrations,
    pending_migrations,
)
from filterdns.store.devices import INSERT_DEVICE_SQL
from filterdns.store.events import INSERT_EVENT_SQL, UPSERT_HOURLY_SQL
from filterdns.store.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

# The store id lives in the store's key/value table, written once when the file is created.
STORE_ID_KEY = "store-id"
_WRITE_STORE_ID_SQL = "INSERT INTO secrets (name, value, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
_READ_STORE_ID_SQL = "SELECT value FROM secrets WHERE name = ?"

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


def _store_id(conn: sqlite3.Connection) -> str:
    """The file's store id, written now if the file has none yet (it was just created, or
    made by a filterdns that did not write one)."""
    conn.execute(_WRITE_STORE_ID_SQL, (STORE_ID_KEY, secrets.token_hex(16), time.time()))
    return str(conn.execute(_READ_STORE_ID_SQL, (STORE_ID_KEY,)).fetchone()[0])


class StoreLost(StoreError):
    """The file at the store's path is gone or belongs to another store."""


class SQLiteStore(Store):
    def __init__(self, settings: StoreConfig, path: Path) -> None:
        super().__init__(settings)
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="filterdns-store")
        self._closed = False
        # Owned by the worker thread:
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None  # device and inode of the open file
        self.store_id: str | None = None  # set by the first open; never changes after
        self._lost: str | None = None  # why the file is not this store's (logged once per change)

    @property
    def location(self) -> str:
        return f"sqlite {sqlite3.sqlite_version} {self.path}"

    # --- on the worker thread ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.store_id is None:  # the first open: the file may be created
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            private_file(self.path)  # SQLite gives its -wal and -shm files the database's mode
            target, uri = str(self.path), False
        elif not self.path.exists():
            raise StoreLost(f"the database file {self.path} is gone (moved or deleted); put it back")
        else:  # mode=rw: never create a file that vanished between the check and here
            target, uri = f"{self.path.absolute().as_uri()}?mode=rw", True
        for companion in ("-wal", "-shm"):
            if self.path.with_name(self.path.name + companion).exists():
                private_file(self.path.with_name(self.path.name + companion))
        conn = sqlite3.connect(target, uri=uri, isolation_level=None, timeout=self.settings.busy_timeout)
        try:
            conn.row_factory = sqlite3.Row
            _enable_wal(conn, self.settings.busy_timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn)
            store_id = _store_id(conn)
            if self.store_id is not None and store_id != self.store_id:
                raise StoreLost(f"the database file {self.path} holds another store (id {store_id}, "
                                f"not {self.store_id}); put the right file back")  # fmt: skip
            stat = os.stat(self.path)
        except BaseException:
            conn.close()
            raise
        self.store_id = store_id
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
        and a database file put back at ``path`` would replay the stale WAL into itself."""
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
            result = job(self._connection(), *args)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        except StoreLost as exc:
            if str(exc) != self._lost:
                self._lost = str(exc)
                log.error("store stopped: %s; nothing is written until then (no new database is created)", exc)
            raise
        except (sqlite3.Error, OSError) as exc:
            self._drop_connection()
            raise StoreError(f"sqlite: {error_text(exc)}") from exc
        if self._lost:
            self._lost = None
            log.info("store: the database file %s is back", self.path)
        return result

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

    def _submit(self, job: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        if self._closed:
            raise StoreError("the store is closed")
        return asyncio.get_running_loop().run_in_executor(self._executor, self._run_job, job, args)

    async def _call(self, job: Callable[..., T], *args: Any) -> T:
        return await self._within_deadline(self._submit(job, *args))

    def _abandon(self) -> None:
        """Interrupt the statement that ran past its deadline (``interrupt`` is the one
        sqlite3 call safe from another thread), so later calls do not queue behind it."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.interrupt()

    async def open(self) -> None:
        await self._call(self._no_job)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):  # a hung worker: leave the connection to it
            await asyncio.wait_for(
                asyncio.shield(loop.run_in_executor(self._executor, self._drop_connection)),
                self.settings.call_timeout,
            )
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
        await self._submit(self._write_events_job, events, hourly, devices)  # no deadline: see insert_events
