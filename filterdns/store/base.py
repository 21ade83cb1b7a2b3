"""The store's foundation: errors, migrations, the backend primitives and the helpers every
kind of data's queries share.

``Store`` (in ``filterdns.store.store``) is assembled from one mixin per kind of data —
query events, users, policy, audit, review requests, parents, secrets, outbox, alerts —
each in a module of its own named for what it holds. Every mixin derives from
``StoreBase``, whose abstract primitives (run a statement, write a batch of events, open,
close) each backend (``sqlite``, ``postgres``) supplies with its own schema migrations.
Every operation is written once, as SQL that SQLite and PostgreSQL both accept (``?``
placeholders; the PostgreSQL backend numbers them), so the backends cannot drift apart.

Times are unix seconds (floats), like ``QueryEvent.time``; hours are UTC hour starts.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar, get_args

from filterdns.config.model import StoreConfig
from filterdns.store.outage import StoreOutage

Row = dict[str, Any]
T = TypeVar("T")

HOUR = 3600
DAY = 86_400


class StoreError(Exception):
    """The store could not do what was asked (database unreachable, locked, full, ...)."""


class Conflict(StoreError):
    """A row with that key exists already (a user name, a token hash)."""


def error_text(exc: BaseException) -> str:
    """An exception's message, or its class name when it has none (``TimeoutError()`` and
    many OS and driver errors say nothing), so no fault is ever reported as blank."""
    return str(exc) or type(exc).__name__


def forget_outcome(task: asyncio.Future[Any]) -> None:
    """Collect the outcome of a call given up on, so asyncio does not report it as an
    exception nobody retrieved (a done callback)."""
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str


# --- migrations -----------------------------------------------------------------------

SCHEMA_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)"
)
CURRENT_VERSION_SQL = "SELECT coalesce(max(version), 0) AS version FROM schema_version"
RECORD_VERSION_SQL = "INSERT INTO schema_version (version, applied) VALUES (?, ?)"

Migration = tuple[int, str]


def load_migrations(filename: str) -> tuple[Migration, ...]:
    """The numbered migrations in a schema file: each ``-- version: N`` line starts one.

    Versions must run 1, 2, 3...: a migration, once released, is never edited; changes
    are new sections at the end.
    """
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    parts = re.split(r"^-- version: (\d+)[ \t]*$", text, flags=re.MULTILINE)
    migrations = tuple((int(v), sql.strip()) for v, sql in zip(parts[1::2], parts[2::2], strict=True))
    if [v for v, _ in migrations] != list(range(1, len(migrations) + 1)):
        raise RuntimeError(f"{filename}: migration versions must be 1, 2, 3...")
    return migrations


def pending_migrations(migrations: Sequence[Migration], current: int) -> list[Migration]:
    """Migrations a database at version ``current`` still needs; refuses a database made
    by a newer filterdns, whose schema this code does not understand."""
    latest = migrations[-1][0] if migrations else 0
    if current > latest:
        raise StoreError(
            f"database schema version {current} is newer than this filterdns knows ({latest})"
        )
    return [m for m in migrations if m[0] > current]


# --- helpers the queries share --------------------------------------------------------


def current_time(now: float | None) -> float:
    """``now`` if the caller gave one (tests, one clock for a whole operation), else the
    current time."""
    return time.time() if now is None else now


def check_choice(value: str, allowed: Any, what: str) -> None:
    """Refuse ``value`` unless it is one of the ``Literal`` type ``allowed``'s values."""
    if value not in get_args(allowed):
        raise ValueError(f"unknown {what} {value!r}")


def marks(values: Sequence[Any]) -> str:
    """One ``?`` placeholder per value, comma-separated (for ``IN (...)``)."""
    return ", ".join("?" * len(values))


class Where:
    """Collects ``AND``-ed conditions and their parameters for a query built at run time."""

    __slots__ = ("clauses", "params")

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def equal(self, column: str, value: Any) -> None:
        if value is not None:
            self.add(f"{column} = ?", value)

    def one_of(self, column: str, values: Sequence[str] | None) -> None:
        if values is None:
            return
        if not values:
            self.add("1 = 0")
        else:
            self.add(f"{column} IN ({marks(values)})", *values)

    def between(self, column: str, since: float | None, until: float | None) -> None:
        if since is not None:
            self.add(f"{column} >= ?", since)
        if until is not None:
            self.add(f"{column} < ?", until)

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""


# --- the backend ----------------------------------------------------------------------


class StoreBase(ABC):
    """What every kind of data's queries stand on: the node's identity, the settings and the
    primitives a backend supplies.

    Every method may raise ``StoreError`` when the database is unavailable; callers on the
    query path go through ``StoreSink``, which never lets that reach DNS.
    """

    # Appended to the subquery that picks rows for one node to claim (the outbox): where
    # writers run side by side (PostgreSQL), rows another node is claiming right now are
    # passed over instead of waited for and then found taken, which left that node with
    # nothing although more was due. SQLite runs one writer at a time and needs nothing.
    CLAIM_SKIP_LOCKED = ""

    def __init__(self, settings: StoreConfig) -> None:
        self.settings = settings
        self.node = settings.node or socket.gethostname()
        self.outage = StoreOutage()  # one WARNING per outage, whichever part meets it first

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date now, raising ``StoreError`` if that
        fails. Optional: every operation connects on demand, so a store whose database is
        down at start-up starts working once the database comes back."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives, for people (never includes a password)."""

    @abstractmethod
    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement (SELECT, or a write with RETURNING) and return its rows."""

    @abstractmethod
    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement; return the number of rows it changed."""

    @abstractmethod
    async def _query_exclusive(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Like ``_query``, with no other ``_query_exclusive`` from any node interleaved:
        for read-then-write statements such as "next id is max(id) + 1"."""

    @abstractmethod
    async def _write_events(
        self, events: list[tuple[Any, ...]], hourly: list[tuple[Any, ...]], devices: list[tuple[Any, ...]]
    ) -> None:
        """Insert event rows, upsert hourly counts and add the devices behind them, in one
        transaction. The one primitive not run within the deadline (see ``insert_events``)."""

    def _abandon(self) -> None:
        """Called when a call ran past its deadline: make it stop if the backend can (the
        SQLite store interrupts its connection). By default the call is just cancelled."""

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        """The outcome of ``call``, or ``StoreError`` once ``settings.call_timeout`` has
        passed. A database that stops answering (a PostgreSQL server stopped, a hung disk)
        would otherwise hold every caller for as long as it hangs: the recorder's events
        would pile up behind it and a health view would hang with it. The call given up on
        is cancelled but not waited for, since a hung server may not even let it end."""
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait((task,), timeout=self.settings.call_timeout)
        except asyncio.CancelledError:
            task.cancel()
            task.add_done_callback(forget_outcome)
            raise
        if not done:
            task.cancel()
            task.add_done_callback(forget_outcome)
            self._abandon()
            raise StoreError(f"no answer within {self.settings.call_timeout:g} s")
        return task.result()

    async def health(self) -> Health:
        """Whether the store answers, with a line of detail for the console."""
        try:
            rows = await self._query(CURRENT_VERSION_SQL)
        except StoreError as exc:
            return Health(False, f"{self.location}: {exc}")
        return Health(True, f"{self.location}, schema version {rows[0]['version']}, node {self.node}")

    async def _newest_first(
        self, select: str, clauses: Sequence[str], params: Sequence[Any], *, limit: int, before_id: int | None
    ) -> list[Row]:
        """A console listing: the rows of ``select`` (``SELECT ... FROM table``) meeting all
        ``clauses``, newest (highest id) first, ``limit`` of them. Paging back goes by id
        (``before_id``) rather than by offset, so rows added meanwhile do not shift pages."""
        if before_id is not None:
            clauses, params = [*clauses, "id < ?"], [*params, before_id]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return await self._query(f"{select}{where} ORDER BY id DESC LIMIT ?", [*params, limit])
