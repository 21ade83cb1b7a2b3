"""Store operations for query events (one row per answered query) and their hourly counts.

The recorder writes events in batches through ``StoreSink``; each batch adds to
``hourly_counts`` in the same transaction, so the counts (kept for a year or more) always
agree with the events they were made from (kept a few weeks). The query log pages through
events; the dashboard and reports read the counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from filterdns.resolver.events import QueryEvent, qtype_name, rcode_name
from filterdns.store.base import HOUR, Row, Where, marks
from filterdns.store.devices import DeviceQueries, device_rows

EVENT_COLUMNS = (
    "time", "node", "client", "mac", "group_name", "name", "qtype", "verdict", "reason",
    "category", "rcode", "latency_ms", "answered_by", "transport", "pupil",
)
INSERT_EVENT_SQL = (
    f"INSERT INTO query_events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({marks(EVENT_COLUMNS)})"
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
    "reason, category, rcode, latency_ms, answered_by, transport, pupil FROM query_events"
)
# Retention deletes raw events in slices this big so that no single statement holds the
# database's write lock (SQLite) or a huge transaction (PostgreSQL) for long.
RETENTION_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which query events to find. ``None`` means "any"; ``groups`` restricts to a scope
    (an empty tuple matches nothing). ``domain`` matches the name and names under it;
    ``name_contains`` is a plain substring. Times are ``since <= time < until``."""

    groups: tuple[str, ...] | None = None
    client: str | None = None
    pupil: str | None = None  # the roster's pupil id (or ``device:<id>``) of DoH/DoT queries
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


def event_rows(events: Sequence[QueryEvent], node: str) -> list[tuple[Any, ...]]:
    """Events as tuples in ``EVENT_COLUMNS`` order (numbers coerced: PostgreSQL's binary
    protocol refuses an int where a double belongs)."""
    return [
        (float(e.time), node, e.client, e.mac, e.group, e.name, e.qtype, e.verdict,
         e.reason, e.category, e.rcode, float(e.latency_ms), e.answered_by, e.transport, e.pupil)
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


class EventQueries(DeviceQueries):
    """The ``query_events`` and ``hourly_counts`` tables (and ``hourly_devices``, written
    with them)."""

    async def insert_events(self, events: Sequence[QueryEvent]) -> None:
        """Store a batch of events and add them to the hourly counts and the devices behind
        them, atomically.

        Unlike every other call, the write itself has no deadline: a write given up on may
        still commit (a server that stopped after taking the COMMIT), and writing those events
        again would count them twice. ``StoreSink`` bounds its wait without cancelling, and
        waits for the outcome of that same write before trying again."""
        if events:
            pseudonyms = await self._device_pseudonyms()
            await self._write_events(
                event_rows(events, self.node), hourly_rows(events, self.node), device_rows(events, pseudonyms)
            )

    async def search_events(
        self, where: EventFilter = EventFilter(), *, limit: int = 100, cursor: str | None = None
    ) -> EventPage:
        """Events matching ``where``, newest first, ``limit`` at a time.

        Pages are keyset-paginated on (time, id): stable while new events arrive, and as
        fast on page 100 as on page 1. No total is counted (that would scan a month).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        w = Where()
        w.one_of("group_name", where.groups)
        w.equal("client", where.client)
        w.equal("pupil", where.pupil)
        w.equal("verdict", where.verdict)
        w.equal("category", where.category)
        if where.hide_categories:
            w.add(f"category NOT IN ({marks(where.hide_categories)})", *where.hide_categories)
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
        w = Where()
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
        w = Where()
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

    # --- retention --------------------------------------------------------------------

    async def delete_events_before(self, cutoff: float, *, home: bool = False) -> int:
        """Delete events older than ``cutoff``, a slice at a time; returns how many. With
        ``home``, only the events of take-home devices at home (groups ``<group>@home``)."""
        total = 0
        where = "time < ? AND group_name LIKE '%@home'" if home else "time < ?"
        while True:
            deleted = await self._execute(
                f"DELETE FROM query_events WHERE id IN (SELECT id FROM query_events WHERE {where} LIMIT ?)",
                [cutoff, RETENTION_CHUNK],
            )
            total += deleted
            if deleted < RETENTION_CHUNK:
                return total

    async def delete_counts_before(self, cutoff: float, *, home: bool = False) -> int:
        """Delete the hourly counts (and the devices behind them) of hours that ended by
        ``cutoff``; returns how many counts. An hour is deleted only once all of it is past
        the cutoff. With ``home``, only those of take-home devices at home."""
        last = math.floor(cutoff) - HOUR
        where = "hour <= ? AND group_name LIKE '%@home'" if home else "hour <= ?"
        await self._execute(f"DELETE FROM hourly_devices WHERE {where}", [last])
        return await self._execute(f"DELETE FROM hourly_counts WHERE {where}", [last])
