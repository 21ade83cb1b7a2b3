"""The weekly class safety report: what one class group's filtering did in one week, as
families may see it.

``build_report`` is a pure function of the store's hourly counts (hour × group × verdict
× category, summed over nodes) and the policy; ``load_report`` fetches those counts and
calls it. Privacy is enforced here, not in templates, so no page can leak more than this
data holds:

* the report is per class group: no domain names, clients or devices ever enter it (the
  hourly counts hold none; the devices behind them are pseudonyms, only counted);
* every figure that fewer than ``ReportSettings.mask_below`` distinct devices stand behind
  (but zero: no device, nobody to single out) becomes a ``Count`` without a value, shown
  as "fewer than 3"; a zero is shown as "none". One
  device's three attempts identify a child as surely as one attempt does. Masked
  categories are listed in policy order, not by their hidden size;
* nothing older than the store's aggregate retention is read, and the trend only shows
  weeks that lie wholly inside it.

A week runs from Monday 00:00 to the next Monday 00:00 in the school's time zone.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from filterdns.config.model import CategoryConfig, Config, GroupConfig
from filterdns.policy.schedule import wall_to_timestamp
from filterdns.reports.guidance import (
    INDIVIDUAL_SITES,
    INDIVIDUAL_SITES_DESCRIPTION,
    UNDESCRIBED,
    category_guidance,
)
from filterdns.reports.periods import Period, Timetable
from filterdns.store import DAY, Store
from filterdns.store.base import Row

BLOCKED = "blocked"
REWRITTEN = "rewritten"  # safe search applied


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """``mask_below``: counts under it are shown as "fewer than N"; ``trend_weeks``: how
    many weeks before the report's week its trend chart shows (when retention allows)."""

    mask_below: int = 3
    trend_weeks: int = 8

    def __post_init__(self) -> None:
        if self.mask_below < 1:
            raise ValueError("reports mask_below must be at least 1")
        if not 1 <= self.trend_weeks <= 52:
            raise ValueError("reports trend_weeks must be 1 to 52")


@dataclass(frozen=True, slots=True)
class Count:
    """A number as families see it: ``value`` is ``None`` when it is below the threshold."""

    value: int | None

    @classmethod
    def of(cls, n: int, devices: int, mask_below: int) -> Count:
        """``n``, unless fewer than ``mask_below`` distinct devices make it up; zero is
        always shown (it singles out nobody), as "none"."""
        return cls(n if n == 0 or devices >= mask_below else None)

    @property
    def masked(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class Week:
    """Monday 00:00 to the next Monday 00:00, local time, as POSIX times."""

    start: date  # the Monday
    since: float
    until: float

    @classmethod
    def containing(cls, day: date, zone: ZoneInfo) -> Week:
        monday = day - timedelta(days=day.weekday())
        return cls(
            monday,
            wall_to_timestamp(datetime.combine(monday, time()), zone),
            wall_to_timestamp(datetime.combine(monday + timedelta(days=7), time()), zone),
        )

    def shifted(self, weeks: int, zone: ZoneInfo) -> Week:
        return Week.containing(self.start + timedelta(weeks=weeks), zone)

    @property
    def end(self) -> date:
        """The week's Sunday."""
        return self.start + timedelta(days=6)


@dataclass(frozen=True, slots=True)
class CategoryLine:
    """Blocked attempts in one category, with what families need to understand them.
    ``when``: "always" (the class's permanent blocks), "scheduled" (during ``schedules``)
    or "other" (blocked for part of the week only, e.g. by a teacher's temporary block)."""

    category: str
    title: str  # gettext message id or the category's own name
    description: str  # the configured description (a catalogue text has a translation)
    when: Literal["always", "scheduled", "other"]
    schedules: tuple[str, ...]  # blocked during these ("scheduled")
    allowed_during: tuple[str, ...]  # ...but allowed during these
    blocked: Count
    tips: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeriodLine:
    period: Period
    lookups: Count
    blocked: Count


@dataclass(frozen=True, slots=True)
class TrendPoint:
    week: Week
    lookups: Count
    blocked: Count
    current: bool  # the report's own week


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """The class's rules in the terms the report uses."""

    always: tuple[str, ...]  # categories blocked at all times
    during: tuple[tuple[str, tuple[str, ...]], ...]  # (schedule, categories blocked in it)
    allowed_during: tuple[tuple[str, tuple[str, ...]], ...]  # (schedule, categories allowed in it)
    individual_sites: bool  # the school blocks single sites too (never listed)
    safe_search: bool
    youtube: str  # "strict", "moderate" or "off"
    bypass_protection: bool


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    group: str
    description: str
    week: Week
    finished: bool  # False while the week is still running
    lookups: Count
    blocked: Count
    made_safe: Count
    categories: tuple[CategoryLine, ...]
    periods: tuple[PeriodLine, ...]
    trend: tuple[TrendPoint, ...]  # oldest first, ending with the report's week
    policy: PolicySummary
    has_timetable: bool
    mask_below: int
    kept_since: float  # nothing before this is kept (the retention limit)


def find_group(config: Config, name: str) -> GroupConfig | None:
    """The group called ``name``; the default group exists even when not configured."""
    for group in config.policy.groups:
        if group.name == name:
            return group
    return GroupConfig(name) if name == config.policy.default_group else None


def policy_summary(group: GroupConfig, config: Config) -> PolicySummary:
    def by_schedule(kind: Literal["block", "allow"]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        merged: dict[str, list[str]] = {}
        for rule in group.rules:
            merged.setdefault(rule.schedule, []).extend(getattr(rule, kind))
        return tuple((s, tuple(dict.fromkeys(c))) for s, c in merged.items() if c)

    return PolicySummary(
        always=tuple(group.block),
        during=by_schedule("block"),
        allowed_during=by_schedule("allow"),
        individual_sites=bool(group.deny_domains or config.policy.deny_domains),
        safe_search=group.safe_search.search,
        youtube=group.safe_search.youtube,
        bypass_protection=group.bypass_protection,
    )


@dataclass(slots=True)
class _Tally:
    """One figure being added up: its count and the devices behind it."""

    count: int = 0
    devices: set[str] = field(default_factory=set)

    def shown(self, mask_below: int) -> Count:
        return Count.of(self.count, len(self.devices), mask_below)


def _category_lines(
    policy: PolicySummary, blocked: Mapping[str, _Tally], categories: Sequence[CategoryConfig], mask_below: int
) -> tuple[CategoryLine, ...]:
    """Every category the class's policy blocks, and any other that blocked something this
    week; shown counts biggest first, then the masked ones, then those with none, both in
    policy order."""
    descriptions = {c.name: c.description for c in categories}
    scheduled: dict[str, list[str]] = {}
    for schedule, names in policy.during:
        for name in names:
            scheduled.setdefault(name, []).append(schedule)
    allowed: dict[str, list[str]] = {}
    for schedule, names in policy.allowed_during:
        for name in names:
            allowed.setdefault(name, []).append(schedule)
    order = list(dict.fromkeys([*policy.always, *scheduled, *(c for c in blocked if blocked[c].count > 0)]))
    if policy.individual_sites and INDIVIDUAL_SITES not in order:
        order.append(INDIVIDUAL_SITES)
    lines = []
    for name in order:
        guidance = category_guidance(name)
        if name == INDIVIDUAL_SITES:
            description = INDIVIDUAL_SITES_DESCRIPTION
        else:
            description = descriptions.get(name) or UNDESCRIBED
        when: Literal["always", "scheduled", "other"] = (
            "always" if name in policy.always else "scheduled" if name in scheduled else "other"
        )
        lines.append(
            CategoryLine(
                category=name,
                title=guidance.title,
                description=description,
                when=when,
                schedules=tuple(scheduled.get(name, ())) if when == "scheduled" else (),
                allowed_during=tuple(allowed.get(name, ())),
                blocked=(blocked[name] if name in blocked else _Tally()).shown(mask_below),
                tips=guidance.tips,
            )
        )
    shown = sorted((line for line in lines if line.blocked.value), key=lambda line: -(line.blocked.value or 0))
    return (*shown, *(line for line in lines if line.blocked.masked), *(line for line in lines if line.blocked.value == 0))


def build_report(
    group: GroupConfig,
    config: Config,
    rows: Iterable[Row],
    *,
    devices: Iterable[Row],
    week: Week,
    trend: Sequence[Week],
    trend_devices: Mapping[Week, tuple[int, int]],
    timetable: Timetable,
    settings: ReportSettings,
    now: float,
    kept_since: float,
) -> WeeklyReport:
    """The report of ``week`` from hourly-count rows (``start``, ``verdict``, ``category``,
    ``count``) of ``group`` and the devices behind them in ``week`` (rows of ``hour``,
    ``verdict``, ``category``, ``device``). ``trend`` lists the weeks of the chart, oldest
    first, ending with ``week``; ``trend_devices`` says how many devices made each earlier
    week's lookups and blocked attempts. Rows outside these weeks, or older than
    ``kept_since``, are ignored."""
    mask = settings.mask_below
    starts = [w.since for w in trend]
    week_index = trend.index(week)
    lookups_per_week: Counter[int] = Counter()
    blocked_per_week: Counter[int] = Counter()
    tallies: defaultdict[tuple[str, object], _Tally] = defaultdict(_Tally)
    categories: dict[str, _Tally] = {}
    hour_periods: dict[int, Period] = {}

    def figures(hour: int, verdict: str, category: str) -> list[_Tally]:
        """The figures of the report's week that a row of this hour, verdict and category adds to."""
        period = hour_periods.get(hour)
        if period is None:
            period = hour_periods[hour] = timetable.hour_period(hour)
        found = [tallies["lookups", None], tallies["lookups", period]]
        if verdict == BLOCKED:
            found += [tallies["blocked", None], tallies["blocked", period]]
            found.append(categories.setdefault(category, _Tally()))
        elif verdict == REWRITTEN:
            found.append(tallies["made_safe", None])
        return found

    for row in rows:
        hour = row["start"]
        if hour < kept_since:
            continue
        index = bisect.bisect_right(starts, hour) - 1
        if index < 0 or hour >= trend[index].until:
            continue
        count = int(row["count"])
        lookups_per_week[index] += count
        if row["verdict"] == BLOCKED:
            blocked_per_week[index] += count
        if index == week_index:
            for tally in figures(hour, row["verdict"], row["category"]):
                tally.count += count
    for row in devices:
        hour = row["hour"]
        if hour >= kept_since and week.since <= hour < week.until:
            for tally in figures(hour, row["verdict"], row["category"]):
                tally.devices.add(row["device"])

    def trend_point(index: int, when: Week) -> TrendPoint:
        if index == week_index:
            return TrendPoint(when, tallies["lookups", None].shown(mask), tallies["blocked", None].shown(mask), True)
        all_devices, blocking_devices = trend_devices.get(when, (0, 0))
        return TrendPoint(
            when,
            Count.of(lookups_per_week[index], all_devices, mask),
            Count.of(blocked_per_week[index], blocking_devices, mask),
            False,
        )

    policy = policy_summary(group, config)
    return WeeklyReport(
        group=group.name,
        description=group.description,
        week=week,
        finished=week.until <= now,
        lookups=tallies["lookups", None].shown(mask),
        blocked=tallies["blocked", None].shown(mask),
        made_safe=tallies["made_safe", None].shown(mask),
        categories=_category_lines(policy, categories, config.policy.categories, mask),
        periods=tuple(
            PeriodLine(p, tallies["lookups", p].shown(mask), tallies["blocked", p].shown(mask)) for p in Period
        ),
        trend=tuple(trend_point(i, w) for i, w in enumerate(trend)),
        policy=policy,
        has_timetable=timetable.has_lessons,
        mask_below=mask,
        kept_since=kept_since,
    )


def retention_start(store: Store, now: float) -> float:
    """The oldest instant whose hourly counts the store keeps."""
    return now - store.settings.aggregates_days * DAY


def selectable_weeks(zone: ZoneInfo, now: float, kept_since: float) -> tuple[Week, Week]:
    """The first and last week a report can be shown for: the first week wholly inside
    retention (or this week, if retention is shorter than that) and this week."""
    current = Week.containing(datetime.fromtimestamp(now, zone).date(), zone)
    first = Week.containing(datetime.fromtimestamp(kept_since, zone).date(), zone)
    if first.since < kept_since:
        first = first.shifted(1, zone)
    return (first if first.since <= current.since else current), current


def clamp_week(day: date | None, zone: ZoneInfo, now: float, kept_since: float) -> Week:
    """The week containing ``day`` (this week if ``None``), moved into the selectable range."""
    first, last = selectable_weeks(zone, now, kept_since)
    if day is None:
        return last
    week = Week.containing(day, zone)
    if week.since < first.since:
        return first
    return last if week.since > last.since else week


def trend_weeks(week: Week, count: int, zone: ZoneInfo, kept_since: float) -> list[Week]:
    """Up to ``count`` weeks before ``week`` that lie wholly inside retention, then ``week``."""
    before = [week.shifted(-n, zone) for n in range(count, 0, -1)]
    return [w for w in before if w.since >= kept_since] + [week]


async def load_report(
    store: Store,
    config: Config,
    group: GroupConfig,
    day: date | None,
    *,
    settings: ReportSettings,
    now: float,
) -> WeeklyReport:
    """The report for ``group`` and the week containing ``day`` (clamped to the weeks
    retention allows; this week when ``None``): the counts in one query, the devices behind
    the week's figures in another, and two small counts per earlier week of the trend."""
    zone = ZoneInfo(config.policy.timezone)
    kept_since = retention_start(store, now)
    week = clamp_week(day, zone, now, kept_since)
    weeks = trend_weeks(week, settings.trend_weeks, zone, kept_since)
    rows = await store.query_aggregates(max(weeks[0].since, kept_since), week.until, groups=[group.name])
    devices = await store.query_devices(max(week.since, kept_since), week.until, group=group.name)
    trend_devices = {
        earlier: (
            await store.count_devices(earlier.since, earlier.until, group=group.name),
            await store.count_devices(earlier.since, earlier.until, group=group.name, verdict=BLOCKED),
        )
        for earlier in weeks[:-1]
    }
    return build_report(
        group, config, rows,
        devices=devices, week=week, trend=weeks, trend_devices=trend_devices,
        timetable=Timetable.for_group(group, config.policy.schedules, zone),
        settings=settings, now=now, kept_since=kept_since,
    )  # fmt: skip
