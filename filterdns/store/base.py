"""The persistent store: what the resolver records and the staff console reads and edits.

``Store`` is the one interface both backends offer. Every operation is written here once,
as SQL that SQLite and PostgreSQL both accept (``?`` placeholders; the PostgreSQL backend
numbers them), so the two backends cannot drift apart in behaviour. A backend supplies
only the abstract primitives at the top of ``Store`` (run a statement, write a batch of
events, open, close) and its own schema migrations.

Times are unix seconds (floats), like ``QueryEvent.time``; hours are UTC hour starts.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from filterdns.config.model import StoreConfig
from filterdns.resolver.events import QueryEvent, qtype_name, rcode_name
from filterdns.store.alerts import AlertQueries
from filterdns.store.outbox import OutboxQueries

Role = Literal["admin", "teacher", "viewer", "parent"]
OverrideKind = Literal["allow", "block"]
ReviewStatus = Literal["pending", "approved", "declined"]
Row = dict[str, Any]

HOUR = 3600
DAY = 86_400
# Retention deletes raw events in slices this big so that no single statement holds the
# database's write lock (SQLite) or a huge transaction (PostgreSQL) for long.
RETENTION_CHUNK = 10_000


class StoreError(Exception):
    """The store could not do what was asked (database unreachable, locked, full, ...)."""


class Conflict(StoreError):
    """A row with that key exists already (a user name, a token hash)."""


# --- records --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str  # an argon2 hash string made by the caller; the store never sees passwords
    groups: tuple[str, ...]  # groups a teacher or parent may see; admins see all
    disabled: bool
    failed_logins: int
    locked_until: float | None
    created: float

    def is_locked(self, now: float) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user: str
    csrf_token: str
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    token_hash: str
    user: str
    name: str
    created: float
    last_used: float | None


@dataclass(frozen=True, slots=True)
class Revision:
    """One saved version of the policy YAML. Ids only grow, in the order revisions commit,
    so "a newer policy exists" is ``latest_revision_id() > the id I loaded``."""

    id: int
    created: float
    node: str
    author: str
    comment: str
    yaml_text: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: float
    node: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Override:
    """A time-boxed exception for one group: allow or block a domain or a whole category."""

    id: int
    group: str
    kind: OverrideKind
    domain: str  # exactly one of domain and category is set; the other is ""
    category: str
    created_by: str
    created_at: float
    expires_at: float
    revoked: bool


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """A "please unblock this" sent from the block page."""

    id: int
    created: float
    node: str
    name: str
    group: str
    client: str
    reason: str
    status: ReviewStatus
    decided_by: str | None
    decided_at: float | None


@dataclass(frozen=True, slots=True)
class ParentProfile:
    """What a parent account has beyond its ``User`` row (whose ``groups`` are the classes
    the parent may see): their children as (child name, group) pairs, the language of
    their pages ("" means the browser's choice), and whether they get the weekly digest
    by mail (on until they turn it off or unsubscribe)."""

    user: str
    children: tuple[tuple[str, str], ...]
    language: str
    digest: bool


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which query events to find. ``None`` means "any"; ``groups`` restricts to a scope
    (an empty tuple matches nothing). ``domain`` matches the name and names under it;
    ``name_contains`` is a plain substring. Times are ``since <= time < until``."""

    groups: tuple[str, ...] | None = None
    client: str | None = None
    name_contains: str | None = None
    domain: str | None = None
    verdict: str | None = None
    category: str | None = None
    since: float | None = None
    until: float | None = None
    hide_categories: tuple[str, ...] = ()  # events in these categories are left out


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events newest first. Pass ``next_cursor`` back to get the following page; it is
    ``None`` on the last page."""

    rows: list[Row]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None


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


# --- SQL shared by both backends ------------------------------------------------------

EVENT_COLUMNS = (
    "time", "node", "client", "mac", "group_name", "name", "qtype", "verdict", "reason",
    "category", "rcode", "latency_ms", "answered_by", "transport",
)
INSERT_EVENT_SQL = (
    f"INSERT INTO query_events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
# Counts are keyed by node too, so nodes sharing a database never contend for a row.
UPSERT_HOURLY_SQL = (
    "INSERT INTO hourly_counts (hour, node, group_name, verdict, category, count) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (hour, group_name, verdict, category, node) "
    "DO UPDATE SET count = hourly_counts.count + excluded.count"
)
_EVENT_SELECT = (
    'SELECT id, node, time, client, mac, group_name AS "group", name, qtype, verdict, '
    "reason, category, rcode, latency_ms, answered_by, transport FROM query_events"
)
_USER_COLUMNS = "name, role, password_hash, groups, disabled, failed_logins, locked_until, created"
_SESSION_COLUMNS = 'token_hash, user_name AS "user", csrf_token, created, expires'
_TOKEN_COLUMNS = 'id, token_hash, user_name AS "user", name, created, last_used'
_REVISION_COLUMNS = "id, created, node, author, comment, yaml_text"
_AUDIT_COLUMNS = "id, time, node, actor, action, target, detail"
_OVERRIDE_COLUMNS = (
    'id, group_name AS "group", kind, domain, category, created_by, created_at, '
    "expires_at, revoked"
)
_REVIEW_COLUMNS = (
    'id, created, node, name, group_name AS "group", client, reason, status, '
    "decided_by, decided_at"
)
_PROFILE_COLUMNS = 'user_name AS "user", children, language, digest'


def event_rows(events: Sequence[QueryEvent], node: str) -> list[tuple[Any, ...]]:
    """Events as tuples in ``EVENT_COLUMNS`` order (numbers coerced: PostgreSQL's binary
    protocol refuses an int where a double belongs)."""
    return [
        (float(e.time), node, e.client, e.mac, e.group, e.name, e.qtype, e.verdict,
         e.reason, e.category, e.rcode, float(e.latency_ms), e.answered_by, e.transport)
        for e in events
    ]


def hourly_rows(events: Sequence[QueryEvent], node: str) -> list[tuple[Any, ...]]:
    """Per-hour counts of a batch for ``UPSERT_HOURLY_SQL``, in key order so that two
    writers upserting overlapping keys lock them in the same order (no deadlock)."""
    counts = Counter((int(e.time // HOUR) * HOUR, e.group, e.verdict, e.category) for e in events)
    return [
        (hour, node, group, verdict, category, n)
        for (hour, group, verdict, category), n in sorted(counts.items())
    ]


class _Where:
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
            self.add(f"{column} IN ({', '.join('?' * len(values))})", *values)

    def between(self, column: str, since: float | None, until: float | None) -> None:
        if since is not None:
            self.add(f"{column} >= ?", since)
        if until is not None:
            self.add(f"{column} < ?", until)

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""


def _like_escape(text: str) -> str:
    """``text`` with LIKE's wildcards made literal (for ``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_cursor(row: Row) -> str:
    return f"{row['time']!r}/{row['id']}"


def _decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        when, _, ident = cursor.partition("/")
        return float(when), int(ident)
    except ValueError:
        raise ValueError(f"invalid event cursor {cursor!r}") from None


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _check(value: str, allowed: Any, what: str) -> None:
    if value not in get_args(allowed):
        raise ValueError(f"unknown {what} {value!r}")


def _user(row: Row) -> User:
    row["groups"] = tuple(json.loads(row["groups"]))
    row["disabled"] = bool(row["disabled"])
    return User(**row)


def _override(row: Row) -> Override:
    row["revoked"] = bool(row["revoked"])
    return Override(**row)


def _audit(row: Row) -> AuditEntry:
    row["detail"] = json.loads(row["detail"])
    return AuditEntry(**row)


def _profile(row: Row) -> ParentProfile:
    row["children"] = tuple((str(child), str(group)) for child, group in json.loads(row["children"]))
    row["digest"] = bool(row["digest"])
    return ParentProfile(**row)


# Outbox rows are kept at least this long: a weekly digest may be queued up to six days late.
MIN_MESSAGE_DAYS = 8


class Store(OutboxQueries, AlertQueries, ABC):
    """The store's operations. Open with ``filterdns.store.open_store``.

    Every method may raise ``StoreError`` when the database is unavailable; callers on the
    query path go through ``StoreSink``, which never lets that reach DNS.
    """

    def __init__(self, settings: StoreConfig) -> None:
        self.settings = settings
        self.node = settings.node or socket.gethostname()

    # --- backend primitives -----------------------------------------------------------

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
    async def _write_events(self, events: list[tuple[Any, ...]], hourly: list[tuple[Any, ...]]) -> None:
        """Insert event rows and upsert hourly counts in one transaction."""

    # --- health -----------------------------------------------------------------------

    async def health(self) -> Health:
        """Whether the store answers, with a line of detail for the console."""
        try:
            rows = await self._query(CURRENT_VERSION_SQL)
        except StoreError as exc:
            return Health(False, f"{self.location}: {exc}")
        return Health(True, f"{self.location}, schema version {rows[0]['version']}, node {self.node}")

    # --- query events -----------------------------------------------------------------

    async def insert_events(self, events: Sequence[QueryEvent]) -> None:
        """Store a batch of events and add them to the hourly counts, atomically."""
        if events:
            await self._write_events(event_rows(events, self.node), hourly_rows(events, self.node))

    async def search_events(
        self, where: EventFilter = EventFilter(), *, limit: int = 100, cursor: str | None = None
    ) -> EventPage:
        """Events matching ``where``, newest first, ``limit`` at a time.

        Pages are keyset-paginated on (time, id): stable while new events arrive, and as
        fast on page 100 as on page 1. No total is counted (that would scan a month).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        w = _Where()
        w.one_of("group_name", where.groups)
        w.equal("client", where.client)
        w.equal("verdict", where.verdict)
        w.equal("category", where.category)
        if where.hide_categories:
            w.add(f"category NOT IN ({', '.join('?' * len(where.hide_categories))})", *where.hide_categories)
        if where.name_contains:
            w.add("name LIKE ? ESCAPE '\\'", f"%{_like_escape(where.name_contains.lower())}%")
        if where.domain:
            domain = where.domain.lower().strip(".")
            w.add("(name = ? OR name LIKE ? ESCAPE '\\')", domain, f"%.{_like_escape(domain)}")
        w.between("time", where.since, where.until)
        if cursor is not None:
            w.add("(time, id) < (?, ?)", *_decode_cursor(cursor))
        rows = await self._query(
            f"{_EVENT_SELECT}{w.sql()} ORDER BY time DESC, id DESC LIMIT ?", [*w.params, limit + 1]
        )
        has_more = len(rows) > limit
        del rows[limit:]
        for row in rows:
            row["qtype_name"] = qtype_name(row["qtype"])
            row["rcode_name"] = rcode_name(row["rcode"])
        return EventPage(rows, has_more, _encode_cursor(rows[-1]) if has_more else None)

    async def query_aggregates(
        self, since: float, until: float, *, groups: Sequence[str] | None = None, bucket: int = HOUR
    ) -> list[Row]:
        """Counts per time bucket × group × verdict × category, summed over nodes.

        An hour counts when its start lies in ``[since, until)``. ``bucket`` (a multiple of
        an hour) merges hours, e.g. ``DAY`` for UTC days. Rows: ``start``, ``group``,
        ``verdict``, ``category``, ``count``, ordered by those.
        """
        if bucket < HOUR or bucket % HOUR:
            raise ValueError("bucket must be a positive multiple of 3600 seconds")
        w = _Where()
        w.between("hour", math.ceil(since), math.ceil(until))
        w.one_of("group_name", groups)
        return await self._query(
            'SELECT (hour / ?) * ? AS start, group_name AS "group", verdict, category, '
            f"CAST(sum(count) AS BIGINT) AS count FROM hourly_counts{w.sql()} "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            [bucket, bucket, *w.params],
        )

    async def top_blocked(
        self,
        since: float,
        until: float,
        *,
        groups: Sequence[str] | None = None,
        by: Literal["category", "name"] = "category",
        limit: int = 10,
    ) -> list[Row]:
        """The most blocked categories (from hourly counts, so any period) or names (from
        raw events, so only within their retention): rows of ``key`` and ``count``.
        Blocks with no category (deny lists) have the key ``""``."""
        w = _Where()
        w.add("verdict = 'blocked'")
        w.one_of("group_name", groups)
        if by == "category":
            w.between("hour", math.ceil(since), math.ceil(until))
            sql = ("SELECT category AS key, CAST(sum(count) AS BIGINT) AS count "
                   f"FROM hourly_counts{w.sql()} GROUP BY category")
        elif by == "name":
            w.between("time", since, until)
            sql = f"SELECT name AS key, count(*) AS count FROM query_events{w.sql()} GROUP BY name"
        else:
            raise ValueError(f"top_blocked by {by!r}: expected 'category' or 'name'")
        return await self._query(f"{sql} ORDER BY 2 DESC, 1 LIMIT ?", [*w.params, limit])

    # --- users ------------------------------------------------------------------------

    async def create_user(
        self, name: str, role: Role, password_hash: str, *,
        groups: Sequence[str] = (), now: float | None = None,
    ) -> User:
        """Add a user; ``Conflict`` if the name is taken."""
        _check(role, Role, "role")
        rows = await self._query(
            "INSERT INTO users (name, role, password_hash, groups, disabled, failed_logins, created) "
            f"VALUES (?, ?, ?, ?, FALSE, 0, ?) RETURNING {_USER_COLUMNS}",
            [name, role, password_hash, json.dumps(list(groups)), _now(now)],
        )
        return _user(rows[0])

    async def get_user(self, name: str) -> User | None:
        rows = await self._query(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", [name])
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self._query(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")]

    async def update_user(
        self, name: str, *,
        role: Role | None = None,
        password_hash: str | None = None,
        groups: Sequence[str] | None = None,
        disabled: bool | None = None,
    ) -> User | None:
        """Change the given fields (``None``: unchanged); ``None`` if there is no such user."""
        changes: dict[str, Any] = {}
        if role is not None:
            _check(role, Role, "role")
            changes["role"] = role
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if groups is not None:
            changes["groups"] = json.dumps(list(groups))
        if disabled is not None:
            changes["disabled"] = disabled
        if not changes:
            return await self.get_user(name)
        assignments = ", ".join(f"{column} = ?" for column in changes)
        rows = await self._query(
            f"UPDATE users SET {assignments} WHERE name = ? RETURNING {_USER_COLUMNS}",
            [*changes.values(), name],
        )
        return _user(rows[0]) if rows else None

    async def delete_user(self, name: str) -> bool:
        """Remove a user with their sessions and API tokens."""
        return await self._execute("DELETE FROM users WHERE name = ?", [name]) > 0

    async def reserve_login_attempt(
        self, name: str, *, now: float | None = None, lock_after: int = 5, lock_seconds: float = 900
    ) -> User | None:
        """Count a login attempt as failed before its password is checked (a good password
        settles it with ``note_login_success``), so that parallel attempts on any node see
        each other; the ``lock_after``-th in a row locks the account for ``lock_seconds``
        and starts the count again. ``None``: no such user, or the account is locked and
        the attempt may not be made."""
        at = _now(now)
        rows = await self._query(
            "UPDATE users SET "
            "locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END, "
            "failed_logins = CASE WHEN failed_logins + 1 >= ? THEN 0 ELSE failed_logins + 1 END "
            f"WHERE name = ? AND (locked_until IS NULL OR locked_until <= ?) RETURNING {_USER_COLUMNS}",
            [lock_after, at + lock_seconds, lock_after, name, at],
        )
        return _user(rows[0]) if rows else None

    async def note_login_success(self, name: str) -> None:
        await self._execute(
            "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?", [name]
        )

    # --- sessions and API tokens ------------------------------------------------------

    async def create_session(
        self, token_hash: str, user: str, csrf_token: str, expires: float, *, now: float | None = None
    ) -> Session:
        rows = await self._query(
            "INSERT INTO sessions (token_hash, user_name, csrf_token, created, expires) "
            f"VALUES (?, ?, ?, ?, ?) RETURNING {_SESSION_COLUMNS}",
            [token_hash, user, csrf_token, _now(now), expires],
        )
        return Session(**rows[0])

    async def get_session(self, token_hash: str, *, now: float | None = None) -> Session | None:
        """The session with this token hash, unless it has expired."""
        rows = await self._query(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE token_hash = ? AND expires > ?",
            [token_hash, _now(now)],
        )
        return Session(**rows[0]) if rows else None

    async def delete_session(self, token_hash: str) -> bool:
        return await self._execute("DELETE FROM sessions WHERE token_hash = ?", [token_hash]) > 0

    async def delete_user_sessions(self, user: str) -> int:
        """Log a user out everywhere (after a password change or when disabling them)."""
        return await self._execute("DELETE FROM sessions WHERE user_name = ?", [user])

    async def create_api_token(
        self, token_hash: str, user: str, name: str, *, now: float | None = None
    ) -> ApiToken:
        rows = await self._query(
            "INSERT INTO api_tokens (token_hash, user_name, name, created) "
            f"VALUES (?, ?, ?, ?) RETURNING {_TOKEN_COLUMNS}",
            [token_hash, user, name, _now(now)],
        )
        return ApiToken(**rows[0])

    async def use_api_token(self, token_hash: str, *, now: float | None = None) -> ApiToken | None:
        """Look a token up by its hash and note that it was used, in one round trip."""
        rows = await self._query(
            f"UPDATE api_tokens SET last_used = ? WHERE token_hash = ? RETURNING {_TOKEN_COLUMNS}",
            [_now(now), token_hash],
        )
        return ApiToken(**rows[0]) if rows else None

    async def list_api_tokens(self, user: str | None = None) -> list[ApiToken]:
        w = _Where()
        w.equal("user_name", user)
        rows = await self._query(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens{w.sql()} ORDER BY id", w.params)
        return [ApiToken(**r) for r in rows]

    async def delete_api_token(self, token_id: int) -> bool:
        return await self._execute("DELETE FROM api_tokens WHERE id = ?", [token_id]) > 0

    # --- policy revisions -------------------------------------------------------------

    async def add_revision(
        self, yaml_text: str, author: str, comment: str = "", *, now: float | None = None
    ) -> int:
        """Save a policy version; returns its id, greater than every earlier one."""
        rows = await self._query_exclusive(
            "INSERT INTO policy_revisions (id, created, node, author, comment, yaml_text) "
            "SELECT coalesce(max(id), 0) + 1, ?, ?, ?, ?, ? FROM policy_revisions RETURNING id",
            [_now(now), self.node, author, comment, yaml_text],
        )
        return int(rows[0]["id"])

    async def latest_revision_id(self) -> int:
        """The newest revision's id (0: none yet). One primary-key lookup: cheap to poll."""
        rows = await self._query("SELECT coalesce(max(id), 0) AS id FROM policy_revisions")
        return int(rows[0]["id"])

    async def latest_revision(self) -> Revision | None:
        rows = await self._query(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions ORDER BY id DESC LIMIT 1"
        )
        return Revision(**rows[0]) if rows else None

    async def get_revision(self, revision_id: int) -> Revision | None:
        rows = await self._query(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions WHERE id = ?", [revision_id]
        )
        return Revision(**rows[0]) if rows else None

    async def list_revisions(self, *, limit: int = 50, before_id: int | None = None) -> list[Revision]:
        """Revisions newest first; ``before_id`` pages back from there."""
        w = _Where()
        if before_id is not None:
            w.add("id < ?", before_id)
        rows = await self._query(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions{w.sql()} ORDER BY id DESC LIMIT ?",
            [*w.params, limit],
        )
        return [Revision(**r) for r in rows]

    # --- audit log --------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str = "",
        detail: dict[str, Any] | None = None, *, now: float | None = None,
    ) -> None:
        """Record who did what to what; ``detail`` must be JSON-serialisable."""
        await self._execute(
            "INSERT INTO audit_log (time, node, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [_now(now), self.node, actor, action, target, json.dumps(detail or {})],
        )

    async def list_audit(
        self, where: AuditFilter = AuditFilter(), *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Audit entries newest first; ``before_id`` pages back from there."""
        w = _Where()
        w.equal("actor", where.actor)
        w.equal("action", where.action)
        w.equal("target", where.target)
        w.between("time", where.since, where.until)
        if before_id is not None:
            w.add("id < ?", before_id)
        rows = await self._query(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log{w.sql()} ORDER BY id DESC LIMIT ?",
            [*w.params, limit],
        )
        return [_audit(r) for r in rows]

    # --- overrides --------------------------------------------------------------------

    async def add_override(
        self, group: str, kind: OverrideKind, *,
        domain: str = "", category: str = "",
        created_by: str, expires_at: float, now: float | None = None,
    ) -> Override:
        """Allow or block one domain or one category for a group until ``expires_at``."""
        _check(kind, OverrideKind, "override kind")
        if bool(domain) == bool(category):
            raise ValueError("an override names exactly one of domain and category")
        created = _now(now)
        if expires_at <= created:
            raise ValueError("an override must expire in the future")
        rows = await self._query(
            "INSERT INTO overrides (group_name, kind, domain, category, created_by, created_at, "
            f"expires_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, FALSE) RETURNING {_OVERRIDE_COLUMNS}",
            [group, kind, domain.lower().strip("."), category, created_by, created, expires_at],
        )
        return _override(rows[0])

    async def list_active_overrides(self, *, now: float | None = None) -> list[Override]:
        """Overrides in force at ``now``: not revoked and not expired. Small and indexed,
        so resolver nodes can poll it."""
        rows = await self._query(
            f"SELECT {_OVERRIDE_COLUMNS} FROM overrides WHERE NOT revoked AND expires_at > ? ORDER BY id",
            [_now(now)],
        )
        return [_override(r) for r in rows]

    async def revoke_override(self, override_id: int) -> bool:
        """End an override early; False if it does not exist or was revoked already."""
        return await self._execute(
            "UPDATE overrides SET revoked = TRUE WHERE id = ? AND NOT revoked", [override_id]
        ) > 0

    # --- review requests --------------------------------------------------------------

    async def add_review_request(
        self, name: str, group: str, client: str, reason: str, *, now: float | None = None
    ) -> ReviewRequest:
        rows = await self._query(
            "INSERT INTO review_requests (created, node, name, group_name, client, reason, status) "
            f"VALUES (?, ?, ?, ?, ?, ?, 'pending') RETURNING {_REVIEW_COLUMNS}",
            [_now(now), self.node, name, group, client, reason],
        )
        return ReviewRequest(**rows[0])

    async def list_review_requests(
        self, *, status: ReviewStatus | None = None, groups: Sequence[str] | None = None,
        limit: int = 100, before_id: int | None = None,
    ) -> list[ReviewRequest]:
        """Requests newest first, optionally of one status and within a group scope."""
        w = _Where()
        w.equal("status", status)
        w.one_of("group_name", groups)
        if before_id is not None:
            w.add("id < ?", before_id)
        rows = await self._query(
            f"SELECT {_REVIEW_COLUMNS} FROM review_requests{w.sql()} ORDER BY id DESC LIMIT ?",
            [*w.params, limit],
        )
        return [ReviewRequest(**r) for r in rows]

    async def decide_review_request(
        self, request_id: int, status: Literal["approved", "declined"], decided_by: str,
        *, now: float | None = None,
    ) -> ReviewRequest | None:
        """Approve or decline a pending request; ``None`` if it is not pending (any more),
        so two staff deciding at once cannot both win."""
        if status not in ("approved", "declined"):
            raise ValueError(f"a review is decided as approved or declined, not {status!r}")
        rows = await self._query(
            "UPDATE review_requests SET status = ?, decided_by = ?, decided_at = ? "
            f"WHERE id = ? AND status = 'pending' RETURNING {_REVIEW_COLUMNS}",
            [status, decided_by, _now(now), request_id],
        )
        return ReviewRequest(**rows[0]) if rows else None

    # --- retention --------------------------------------------------------------------

    async def enforce_retention(self, now: float | None = None) -> dict[str, int]:
        """Delete what is older than the configured retention, and expired sessions.
        Returns how many rows went, per kind. Run it periodically (hourly is plenty)."""
        now = _now(now)
        s = self.settings
        events = 0
        while True:
            deleted = await self._execute(
                "DELETE FROM query_events WHERE id IN "
                "(SELECT id FROM query_events WHERE time < ? LIMIT ?)",
                [now - s.raw_events_days * DAY, RETENTION_CHUNK],
            )
            events += deleted
            if deleted < RETENTION_CHUNK:
                break
        # An hour is deleted only once all of it is past the cutoff.
        aggregates = await self._execute(
            "DELETE FROM hourly_counts WHERE hour <= ?",
            [math.floor(now) - s.aggregates_days * DAY - HOUR],
        )
        audit = await self._execute("DELETE FROM audit_log WHERE time < ?", [now - s.audit_days * DAY])
        sessions = await self._execute("DELETE FROM sessions WHERE expires <= ?", [now])
        # Sent mail holds what the events held, so it goes with them; but never before a
        # digest's dedup key has outlived the days in which that digest may still be queued.
        messages = await self.delete_old_messages(now - max(s.raw_events_days, MIN_MESSAGE_DAYS) * DAY)
        # Safeguarding alerts are records of what staff did about a concern, like the audit.
        alerts = await self.delete_alerts_before(now - s.audit_days * DAY)
        return {
            "events": events, "aggregates": aggregates, "audit": audit, "sessions": sessions,
            "messages": messages, "alerts": alerts,
        }  # fmt: skip

    # --- parents, one-time password links, server secrets -------------------------------

    async def save_parent_profile(self, user: str, children: Sequence[tuple[str, str]]) -> ParentProfile:
        """Create a parent's profile or replace their children (the language is kept).
        The ``users`` row must exist; deleting it deletes the profile."""
        rows = await self._query(
            "INSERT INTO parent_profiles (user_name, children, language) VALUES (?, ?, '') "
            "ON CONFLICT (user_name) DO UPDATE SET children = excluded.children "
            f"RETURNING {_PROFILE_COLUMNS}",
            [user, json.dumps([[child, group] for child, group in children])],
        )
        return _profile(rows[0])

    async def set_parent_language(self, user: str, language: str) -> bool:
        """Set the language of a parent's pages ("": the browser's); False if no profile."""
        return await self._execute(
            "UPDATE parent_profiles SET language = ? WHERE user_name = ?", [language, user]
        ) > 0

    async def set_parent_digest(self, user: str, on: bool) -> bool:
        """Turn a parent's weekly digest mail on or off; False if they have no profile."""
        return await self._execute(
            "UPDATE parent_profiles SET digest = ? WHERE user_name = ?", [bool(on), user]
        ) > 0

    async def get_parent_profile(self, user: str) -> ParentProfile | None:
        rows = await self._query(f"SELECT {_PROFILE_COLUMNS} FROM parent_profiles WHERE user_name = ?", [user])
        return _profile(rows[0]) if rows else None

    async def list_parent_profiles(self) -> list[ParentProfile]:
        rows = await self._query(f"SELECT {_PROFILE_COLUMNS} FROM parent_profiles ORDER BY user_name")
        return [_profile(r) for r in rows]

    async def put_password_token(
        self, user: str, token_hash: str, expires: float, *, now: float | None = None
    ) -> None:
        """Issue ``user``'s one-time password link (its token's hash), replacing any link
        issued before, which stops working."""
        await self._execute(
            "INSERT INTO password_tokens (user_name, token_hash, created, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (user_name) DO UPDATE SET token_hash = excluded.token_hash, "
            "created = excluded.created, expires = excluded.expires",
            [user, token_hash, _now(now), expires],
        )

    async def password_token_user(self, token_hash: str, *, now: float | None = None) -> str | None:
        """Whose live password link this is, without using it up (showing the form)."""
        rows = await self._query(
            'SELECT user_name AS "user" FROM password_tokens WHERE token_hash = ? AND expires > ?',
            [token_hash, _now(now)],
        )
        return rows[0]["user"] if rows else None

    async def use_password_token(self, token_hash: str, *, now: float | None = None) -> str | None:
        """Use a password link up: whose it was, or ``None`` if it is unknown, used or
        expired. Atomic, so a link works once even when submitted twice at once."""
        rows = await self._query(
            'DELETE FROM password_tokens WHERE token_hash = ? AND expires > ? RETURNING user_name AS "user"',
            [token_hash, _now(now)],
        )
        return rows[0]["user"] if rows else None

    async def get_secret(self, name: str, candidate: str, *, now: float | None = None) -> str:
        """The server secret called ``name``. If there is none yet, ``candidate`` (fresh
        random text from the caller) becomes it; when two nodes race, both get the one that
        was stored first."""
        rows = await self._query("SELECT value FROM secrets WHERE name = ?", [name])
        if not rows:
            await self._execute(
                "INSERT INTO secrets (name, value, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                [name, candidate, _now(now)],
            )
            rows = await self._query("SELECT value FROM secrets WHERE name = ?", [name])
        return str(rows[0]["value"])

    async def set_secret(self, name: str, value: str, *, now: float | None = None) -> None:
        """Replace (rotate) a server secret: whatever the old one signed stops being valid."""
        await self._execute(
            "INSERT INTO secrets (name, value, created) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, created = excluded.created",
            [name, value, _now(now)],
        )
