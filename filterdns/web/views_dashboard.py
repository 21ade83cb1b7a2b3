"""The dashboard: queries and blocks over time, what was blocked most, and the health of
upstreams, lists and the store. Teachers see their own groups only.

The traffic figures come from the store's hourly counts (kept for months), folded here into
hours or local days; ``traffic`` is shared with the API's /stats.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web

from filterdns.policy.listhealth import essential_note, over_share
from filterdns.store import DAY, HOUR, Store, StoreError
from filterdns.web.auth import group_picker, require, scope_filter
from filterdns.web.charts import Bar, Series, stacked_bars
from filterdns.web.common import (
    CONSOLE_ROLES,
    VERDICTS,
    NavItem,
    add_nav,
    all_group_names,
    control_of,
    format_time,
    render,
    user_of,
    zone_of,
)

Bucket = Literal["hour", "day"]
SERIES = (
    Series("allowed", "Allowed"),
    Series("rewritten", "Rewritten (safe search)"),
    Series("blocked", "Blocked"),
    Series("error", "Failed"),
)


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    label: str
    seconds: int
    bucket: Bucket


PERIODS = {
    p.key: p
    for p in (
        Period("24h", "Last 24 hours", DAY, "hour"),
        Period("7d", "Last 7 days", 7 * DAY, "day"),
        Period("30d", "Last 30 days", 30 * DAY, "day"),
    )
}


@dataclass(frozen=True, slots=True)
class TrafficRow:
    """Queries of one group in one bucket, by verdict."""

    start: float
    group: str
    counts: dict[str, int]


def _local_midnight(timestamp: float, zone: ZoneInfo) -> float:
    return datetime.fromtimestamp(timestamp, zone).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def bucket_starts(since: float, until: float, bucket: Bucket, zone: ZoneInfo) -> list[float]:
    """The start of every bucket overlapping ``[since, until)``: UTC hours, or local days."""
    if bucket == "hour":
        return [float(t) for t in range(int(since // HOUR * HOUR), int(until), HOUR)]
    starts = []
    day = datetime.fromtimestamp(since, zone).date()
    while (start := _midnight(day, zone)) < until:
        starts.append(start)
        day += timedelta(days=1)
    return starts


def period_bounds(period: Period, zone: ZoneInfo, now: float) -> tuple[float, float]:
    """A period ending with the current hour, starting on a bucket boundary: the last 24
    whole hours, or the last N local days counting today."""
    until = (now // HOUR + 1) * HOUR
    if period.bucket == "hour":
        return until - period.seconds, until
    first = datetime.fromtimestamp(now, zone).date() - timedelta(days=period.seconds // DAY - 1)
    return _midnight(first, zone), until


async def traffic(
    store: Store, since: float, until: float, groups: Sequence[str] | None, bucket: Bucket, zone: ZoneInfo
) -> list[TrafficRow]:
    """Verdict counts per bucket and group, from the hourly counts."""
    rows = await store.query_aggregates(since, until, groups=groups)
    folded: dict[tuple[float, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(VERDICTS, 0))
    for row in rows:
        start = float(row["start"]) if bucket == "hour" else _local_midnight(row["start"], zone)
        counts = folded[(start, row["group"])]
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + int(row["count"])
    return [TrafficRow(start, group, counts) for (start, group), counts in sorted(folded.items())]


def traffic_bars(rows: Sequence[TrafficRow], starts: Sequence[float], bucket: Bucket, zone: ZoneInfo) -> list[Bar]:
    """One bar per bucket, the selected groups summed."""
    by_start: dict[float, dict[str, int]] = {start: {} for start in starts}
    for row in rows:
        totals = by_start.setdefault(row.start, {})
        for verdict, count in row.counts.items():
            totals[verdict] = totals.get(verdict, 0) + count
    bars = []
    for start in starts:
        if bucket == "hour":
            label = format_time(start, zone, "%H:%M")
            title = format_time(start, zone, "%a %d %b %H:%M") + format_time(start + HOUR, zone, "-%H:%M")
        else:
            label = format_time(start, zone, "%d %b")
            title = format_time(start, zone, "%A %d %B")
        bars.append(Bar(label, title, by_start[start]))
    return bars


def list_summary(control) -> list[dict]:
    """Per category: domains loaded, sources, the oldest copy in use, and any problems,
    including sources that would block more than ``lists.essential_alert_share`` of the
    essential names (flagged in red: such a list is too broad for a school)."""

    def empty(category: str, domains: int = 0) -> dict:
        return {
            "category": category, "domains": domains, "sources": 0, "last_refresh": None, "errors": [],
            "bad_lines": 0, "too_broad": [],
        }

    total, share = control.list_health().essential_total, control.config.node.lists.essential_alert_share
    summary = {name: empty(name, size) for name, size in control.list_sizes().items()}
    for status in control.category_statuses():
        entry = summary.setdefault(status.category, empty(status.category))
        entry["sources"] += 1
        entry["bad_lines"] += status.bad_lines
        if over_share(len(status.essential_blocked), total, share):
            entry["too_broad"].append(f"{status.label}: {essential_note(status.essential_blocked, total)}")
        if status.error:
            entry["errors"].append(f"{status.location}: {status.error}")
        if status.last_refresh is not None:
            current = entry["last_refresh"]
            entry["last_refresh"] = status.last_refresh if current is None else min(current, status.last_refresh)
    return list(summary.values())


@require(*CONSOLE_ROLES)
async def dashboard(request: web.Request) -> web.StreamResponse:
    control = control_of(request)
    user = user_of(request)
    zone = zone_of(request)
    period = PERIODS.get(request.query.get("period", ""), PERIODS["24h"])
    group = request.query.get("group", "")
    scope = scope_filter(user, group or None, all_group_names(control))
    since, until = period_bounds(period, zone, time.time())
    starts = bucket_starts(since, until, period.bucket, zone)
    chart = None
    top_categories: list[dict] = []
    top_names: list[dict] = []
    store = control.store_health()
    # A store known to be down is not asked (each question would wait out its deadline):
    # the page shows the health panel at once.
    store_error = "" if store["ok"] else store["detail"]
    totals = dict.fromkeys(VERDICTS, 0)
    try:
        if not store_error:
            rows = await traffic(control.store, since, until, scope, period.bucket, zone)
            bars = traffic_bars(rows, starts, period.bucket, zone)
            for bar in bars:
                for verdict, count in bar.values.items():
                    totals[verdict] = totals.get(verdict, 0) + count
            chart = stacked_bars(bars, SERIES, title=f"Queries, {period.label.lower()}")
            top_categories = await control.store.top_blocked(since, until, groups=scope, by="category")
            top_names = await control.store.top_blocked(since, until, groups=scope, by="name")
    except StoreError as exc:
        store_error = str(exc)
    queries = sum(totals.values())
    return await render(
        request,
        "dashboard.html",
        {
            "periods": list(PERIODS.values()),
            "period": period,
            "groups": group_picker(request),
            "group": group,
            "chart": chart,
            "queries": queries,
            "blocked": totals.get("blocked", 0),
            "blocked_share": 100 * totals.get("blocked", 0) / queries if queries else 0.0,
            "top_categories": top_categories,
            "top_names": top_names,
            "top_max": max([r["count"] for r in top_categories + top_names], default=1),
            "upstreams": control.upstream_health(),
            "lists": list_summary(control),
            "store": store,
            "store_error": store_error,
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/", dashboard, name="dashboard")
    add_nav(app, NavItem("/", "Dashboard", CONSOLE_ROLES, "nav-dashboard"))
