"""The shared store: one PostgreSQL database for several resolver nodes (asyncpg).

Each node writes its own rows (every event, count, audit entry and revision carries the
node's name), so nodes never contend for a row on the hot write path; hourly counts are
keyed by node for the same reason. Where nodes must agree — the schema at start-up and
the next policy revision id — a transaction-scoped advisory lock serialises them.

The pool connects on first use and reconnects by itself after the server restarts, so a
node that started while the database was down begins storing once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from filterdns.config.model import StoreConfig
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
from filterdns.store.events import EVENT_COLUMNS, UPSERT_HOURLY_SQL
from filterdns.store.store import Store

MIGRATIONS = load_migrations("schema_postgres.sql")

# Advisory locks are named by a 64-bit number; these spell "filterdn" plus a purpose byte.
_LOCK_BASE = int.from_bytes(b"filterdn", "big") & ~0xFF
SCHEMA_LOCK = _LOCK_BASE | 1
EXCLUSIVE_LOCK = _LOCK_BASE | 2


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (the shared SQL
    has no ``?`` anywhere else)."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def describe_dsn(dsn: str) -> str:
    """Server and database of a DSN for display, leaving out user and password."""
    parts = urlsplit(dsn)
    if not parts.scheme:
        return "postgresql"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"postgresql {parts.hostname or 'localhost'}{port}/{parts.path.lstrip('/')}"


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    """asyncpg's and the network's exceptions as the store's own."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise Conflict(str(exc)) from exc
    except TimeoutError as exc:  # asyncpg's connect or command timeout: it says nothing itself
        raise StoreError("postgresql: the server did not answer in time") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StoreError(f"postgresql: {error_text(exc)}") from exc


async def _migrate(conn: asyncpg.pool.PoolConnectionProxy[Any]) -> None:
    """Bring the schema up to date. The advisory lock makes a second node starting at the
    same moment wait, then find nothing left to do (``CREATE TABLE IF NOT EXISTS`` alone
    is not safe against a concurrent creator)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(SCHEMA_VERSION_DDL)
        current = await conn.fetchval(CURRENT_VERSION_SQL)
        for version, script in pending_migrations(MIGRATIONS, current):
            await conn.execute(script)
            await conn.execute(numbered(RECORD_VERSION_SQL), version, time.time())


class PostgresStore(Store):
    CLAIM_SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"

    def __init__(self, settings: StoreConfig) -> None:
        super().__init__(settings)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._closed = False

    @property
    def location(self) -> str:
        return describe_dsn(self.settings.dsn)

    async def _get_pool(self) -> asyncpg.Pool:
        if self._closed:
            raise StoreError("the store is closed")
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._create_pool()
        return self._pool

    async def _create_pool(self) -> asyncpg.Pool:
        s = self.settings
        with _translated_errors():
            pool = await asyncpg.create_pool(
                s.dsn,
                min_size=1,
                max_size=s.pool_size,
                timeout=s.connect_timeout,
                command_timeout=s.statement_timeout,
            )
            try:
                async with pool.acquire() as conn:
                    await _migrate(conn)
            except BaseException:
                pool.terminate()
                raise
        return pool

    async def open(self) -> None:
        await self._within_deadline(self._get_pool())

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.settings.connect_timeout)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                pool.terminate()

    # The primitives run within the store's deadline (``_within_deadline``): asyncpg's own
    # command timeout does not cover giving a connection back to the pool, which waits for
    # a stopped server as long as it is stopped.

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._within_deadline(self._fetch(sql, params))

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._within_deadline(self._run(sql, params))

    async def _query_exclusive(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._within_deadline(self._fetch_exclusive(sql, params))

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        pool = await self._get_pool()
        with _translated_errors():
            return [dict(record) for record in await pool.fetch(numbered(sql), *params)]

    async def _run(self, sql: str, params: Sequence[Any]) -> int:
        pool = await self._get_pool()
        with _translated_errors():
            status = await pool.execute(numbered(sql), *params)
        # The command tag ends in the row count: "DELETE 3", "INSERT 0 1".
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def _fetch_exclusive(self, sql: str, params: Sequence[Any]) -> list[Row]:
        pool = await self._get_pool()
        with _translated_errors():
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", EXCLUSIVE_LOCK)
                return [dict(record) for record in await conn.fetch(numbered(sql), *params)]

    async def _write_events(
        self, events: list[tuple[Any, ...]], hourly: list[tuple[Any, ...]], devices: list[tuple[Any, ...]]
    ) -> None:
        # No deadline here: see EventQueries.insert_events.
        pool = await self._get_pool()
        with _translated_errors():
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table("query_events", records=events, columns=EVENT_COLUMNS)
                await conn.executemany(numbered(UPSERT_HOURLY_SQL), hourly)
                await conn.executemany(numbered(INSERT_DEVICE_SQL), devices)
