"""The weekly class report's data: periods of the school day from a real timetable (with a
holiday), report numbers from synthetic events written to a real SQLite store (hourly
counts), masking, retention and trend weeks; and the store operations parents need, on
SQLite and (when installed) PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from filterdns.config.loader import load_config
from filterdns.config.model import Config, GroupConfig
from filterdns.reports.periods import Period, Timetable, lesson_schedules
from filterdns.reports.weekly import (
    Count,
    ReportSettings,
    Week,
    WeeklyReport,
    build_report,
    selectable_weeks,
    trend_weeks,
    clamp_week,
    find_group,
    load_report,
)
from filterdns.resolver.events import QueryEvent
from filterdns.store import DAY, Store, StoreConfig, open_store
from filterdns.store.sqlite import MIGRATIONS
from tests.support import stores
from tests.support.stores import StoreFactory

pg_server, store_factory = stores.pg_server, stores.store_factory  # both backends, for the parents' store API

LONDON = ZoneInfo("Europe/London")
# Monday 9 March 2026; London is on GMT (UTC+0) until 29 March.
MONDAY = date(2026, 3, 9)
HOLIDAY = "2026-03-11"  # the Wednesday of that week
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=LONDON).timestamp()

CONFIG = f"""
timezone: Europe/London
categories:
  social: {{description: "Social networks such as Instagram.", domains: [social.example]}}
  games: {{description: "Online games.", domains: [games.example]}}
  adult: {{description: "Adult sites.", domains: [adult.example]}}
schedules:
  lessons:
    weekly:
      mon-fri: ["08:45-10:45", "11:05-12:25", "13:15-15:15"]
    exceptions:
      - {{name: Strike day, dates: "{HOLIDAY}"}}
  lunch:
    weekly:
      mon-fri: ["12:25-13:15"]
  after-school:
    weekly:
      mon-fri: ["15:15-17:30"]
groups:
  7b:
    networks: [10.0.7.0/24]
    block: [adult, games]
    rules:
      - {{during: lessons, block: [social]}}
      - {{during: lunch, allow: [games]}}
    deny: [blocked-one-by-one.example]
    safe_search: {{search: true, youtube: strict}}
  8c:
    networks: [10.0.8.0/24]
    block: [adult]
    rules:
      - {{during: lunch, allow: [games]}}
  club:
    networks: [10.0.9.0/24]
    rules:
      - {{during: after-school, block: [games]}}
default_group: guests
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def group(config: Config, name: str) -> GroupConfig:
    found = find_group(config, name)
    assert found is not None
    return found


def at(day: date, hour: int, minute: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON).timestamp()


def on(weekday: int, hour: int, minute: int = 0) -> float:
    """An instant in the test week: weekday 0 is Monday 9 March."""
    return at(date.fromordinal(MONDAY.toordinal() + weekday), hour, minute)


# --- periods ------------------------------------------------------------------------------------


def test_periods_of_a_school_day_a_holiday_and_a_weekend(config: Config):
    timetable = Timetable.for_group(group(config, "7b"), config.policy.schedules, LONDON)
    assert timetable.has_lessons
    expected = {
        on(0, 5, 59): Period.LATE_NIGHT,
        on(0, 6, 0): Period.BEFORE_SCHOOL,
        on(0, 8, 44): Period.BEFORE_SCHOOL,
        on(0, 8, 45): Period.LESSONS,
        on(0, 10, 50): Period.BREAK,  # morning break
        on(0, 12, 40): Period.BREAK,  # lunch
        on(0, 15, 14): Period.LESSONS,
        on(0, 15, 15): Period.AFTER_SCHOOL,
        on(0, 21, 59): Period.AFTER_SCHOOL,
        on(0, 22, 0): Period.LATE_NIGHT,
        on(2, 9, 30): Period.NO_SCHOOL,  # the holiday: no lessons all day
        on(2, 23, 0): Period.LATE_NIGHT,
        on(5, 11, 0): Period.NO_SCHOOL,  # Saturday
    }
    assert {t: timetable.period_at(t) for t in expected} == expected


def test_an_hour_belongs_to_the_period_covering_most_of_it(config: Config):
    timetable = Timetable.for_group(group(config, "7b"), config.policy.schedules, LONDON)
    assert timetable.hour_period(on(0, 8)) is Period.BEFORE_SCHOOL  # 45 min before, 15 in a lesson
    assert timetable.hour_period(on(0, 10)) is Period.LESSONS  # 45 min lesson, 15 break
    assert timetable.hour_period(on(0, 12)) is Period.BREAK  # 25 min lesson, 35 lunch
    assert timetable.hour_period(on(0, 15)) is Period.AFTER_SCHOOL
    assert timetable.hour_period(on(2, 9)) is Period.NO_SCHOOL


def test_which_schedules_are_lessons(config: Config):
    names = {g: [s.name for s in lesson_schedules(group(config, g), config.policy.schedules)] for g in ("7b", "8c", "club", "guests")}
    # Blocking rules name the lessons; a group with only "allow" rules uses the schedule
    # called lessons.
    assert names == {"7b": ["lessons"], "8c": ["lessons"], "club": ["after-school"], "guests": ["lessons"]}
    bare = Timetable([], LONDON)
    assert not bare.has_lessons
    assert bare.period_at(on(0, 9)) is Period.NO_SCHOOL and bare.period_at(on(0, 23)) is Period.LATE_NIGHT


# --- report numbers from the store --------------------------------------------------------------


NEW_DEVICE = itertools.count(1000)


def ev(
    t: float, name: str, verdict: str = "allowed", category: str = "", group_name: str = "7b", device: int = 21
) -> QueryEvent:
    return QueryEvent(
        time=t, client=f"10.0.{device // 250}.{device % 250}", group=group_name, name=name, qtype=1, verdict=verdict,  # type: ignore[arg-type]
        reason=f"category:{category}" if category else "", category=category, rcode=0, latency_ms=1.0,
        answered_by="policy" if verdict != "allowed" else "cache", transport="udp",
    )  # fmt: skip


def blocked(t: float, category: str, n: int, name: str = "x.example", group_name: str = "7b") -> list[QueryEvent]:
    """``n`` blocked attempts, each from a device of its own (one no other call uses)."""
    return [ev(t + i, name, "blocked", category, group_name, device=next(NEW_DEVICE)) for i in range(n)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(StoreConfig(node="test", aggregates_days=30), tmp_path)
    yield opened
    await opened.close()


async def week_report(store: Store, config: Config, name: str = "7b", day: date = MONDAY, **settings: Any) -> WeeklyReport:
    return await load_report(store, config, group(config, name), day, settings=ReportSettings(**settings), now=NOW)


async def test_report_counts_categories_periods_and_masks_small_numbers(store: Store, config: Config):
    await store.insert_events(
        blocked(on(0, 9, 10), "social", 7, "instagram.com")  # Monday, in a lesson
        + blocked(on(2, 9, 30), "social", 3, "tiktok.com")  # the holiday
        + blocked(on(1, 16, 30), "games", 2, "roblox.com")  # after school: fewer than 3
        + blocked(on(3, 23, 30), "adult", 1, "adult.example")  # late night
        + blocked(on(4, 12, 50), "", 3, "blocked-one-by-one.example")  # a deny-list block at lunch
        + [ev(on(0, 7, 30) + i, "bbc.co.uk", device=i) for i in range(20)]
        + [ev(on(4, 12, 40) + i, "www.google.com", "rewritten", device=i) for i in range(4)]
        + blocked(on(0, 9, 10), "social", 50, group_name="8c")  # another class: not counted
    )
    report = await week_report(store, config)
    assert report.week == Week.containing(MONDAY, LONDON) and report.finished
    assert (report.lookups, report.blocked, report.made_safe) == (Count(40), Count(16), Count(4))
    lines = {line.category: line for line in report.categories}
    # Shown counts biggest first, then the masked ones in policy order (adult, games).
    assert [(line.category, line.blocked.value) for line in report.categories] == [
        ("social", 10), ("", 3), ("adult", None), ("games", None)
    ]
    assert lines["social"].when == "scheduled" and lines["social"].schedules == ("lessons",)
    assert lines["games"].when == "always" and lines["games"].allowed_during == ("lunch",)
    assert lines["social"].description == "Social networks such as Instagram." and lines["social"].tips
    assert lines[""].title == "Individual sites blocked by the school"
    periods = {line.period: (line.lookups.value, line.blocked.value) for line in report.periods}
    assert periods == {
        Period.BEFORE_SCHOOL: (20, 0),  # none blocked: shown, a zero singles out nobody
        Period.LESSONS: (7, 7),
        Period.BREAK: (7, 3),  # the deny-list blocks and the four safe searches at lunch
        Period.AFTER_SCHOOL: (None, None),
        Period.LATE_NIGHT: (None, None),
        Period.NO_SCHOOL: (3, 3),
    }
    policy = report.policy
    assert policy.always == ("adult", "games") and policy.during == (("lessons", ("social",)),)
    assert policy.allowed_during == (("lunch", ("games",)),) and policy.individual_sites
    assert policy.safe_search and policy.youtube == "strict" and report.has_timetable
    # A higher threshold masks more; zero is never masked.
    stricter = await week_report(store, config, mask_below=11)
    assert stricter.blocked == Count(16) and all(line.blocked.masked for line in stricter.categories)
    assert Count.of(0, 0, 3) == Count(0) and Count.of(3, 3, 3) == Count(3) and Count.of(3, 2, 3).masked


async def test_a_figure_is_masked_unless_enough_devices_make_it(store: Store, config: Config):
    """One device's three attempts single a child out as surely as one attempt: masked.
    Three devices with one attempt each: shown. In the report, its periods and its trend."""
    previous, earlier = date(2026, 3, 2), date(2026, 2, 23)
    await store.insert_events(
        [ev(on(0, 9, 10) + i, "tiktok.com", "blocked", "social", device=7) for i in range(3)]  # one device
        + [ev(on(1, 9, 10) + i, "roblox.com", "blocked", "games", device=30 + i) for i in range(3)]  # three
        + [ev(at(previous, 9) + i, "tiktok.com", "blocked", "social", device=7) for i in range(5)]  # one, last week
        + [ev(at(earlier, 9) + i, "tiktok.com", "blocked", "social", device=40 + i) for i in range(3)]  # three
    )
    report = await week_report(store, config, mask_below=3)
    lines = {line.category: line.blocked for line in report.categories}
    assert lines["social"].masked and lines["games"] == Count(3)
    assert report.blocked == Count(6) and report.lookups == Count(6)  # four devices in all
    lessons = next(line for line in report.periods if line.period is Period.LESSONS)
    assert lessons.blocked == Count(6)
    assert [(p.week.start, p.blocked) for p in report.trend] == [
        (earlier, Count(3)), (previous, Count(None)), (MONDAY, Count(6))
    ]
    stricter = await week_report(store, config, mask_below=5)
    assert stricter.blocked.masked and stricter.lookups.masked  # 6 attempts, but 4 devices


async def test_trend_weeks_and_retention(store: Store, config: Config):
    kept_since = NOW - 30 * DAY
    previous = date(2026, 3, 2)
    await store.insert_events(
        blocked(on(0, 9), "social", 4)
        + blocked(at(previous, 9), "social", 5)
        + blocked(at(date(2026, 2, 23), 9), "games", 6)
        + blocked(kept_since - 3600, "adult", 9)  # older than retention: never shown
    )
    report = await week_report(store, config, trend_weeks=8)
    weeks = [point.week.start for point in report.trend]
    # Only weeks wholly inside the 30 days kept: from Monday 23 February.
    assert weeks == [date(2026, 2, 23), date(2026, 3, 2), MONDAY]
    assert all(point.week.since >= kept_since for point in report.trend)
    assert [(p.blocked.value, p.current) for p in report.trend] == [(6, False), (5, False), (4, True)]
    assert report.kept_since == kept_since
    # Weeks outside the selectable range are moved into it.
    assert clamp_week(date(2025, 1, 1), LONDON, NOW, kept_since).start == date(2026, 2, 23)
    assert clamp_week(date(2027, 1, 1), LONDON, NOW, kept_since).start == date(2026, 3, 16)
    assert clamp_week(None, LONDON, NOW, kept_since).start == date(2026, 3, 16)
    old = await week_report(store, config, day=date(2026, 2, 16))  # asks for a week before retention
    assert old.week.start == date(2026, 2, 23) and old.blocked == Count(6)
    assert "adult" not in {line.category for line in old.categories if line.blocked.value}


async def test_a_running_week_and_a_group_without_a_timetable(store: Store, config: Config, tmp_path: Path):
    running = await load_report(store, config, group(config, "7b"), None, settings=ReportSettings(), now=on(2, 12))
    assert running.week.start == MONDAY and not running.finished
    plain = tmp_path / "plain.yaml"
    plain.write_text("groups:\n  7b: {networks: [10.0.7.0/24]}\n")
    bare = load_config(plain)
    report = await load_report(store, bare, group(bare, "7b"), MONDAY, settings=ReportSettings(), now=NOW)
    assert not report.has_timetable and report.categories == () and report.policy.always == ()
    assert find_group(bare, "default") is bare.policy.groups[-1] and find_group(bare, "nope") is None
    # The loader always defines the default group; a Config made otherwise still has it.
    assert find_group(Config(), "default") == GroupConfig("default")


def test_report_settings_are_checked():
    with pytest.raises(ValueError):
        ReportSettings(mask_below=0)
    with pytest.raises(ValueError):
        ReportSettings(trend_weeks=0)


# --- store: parents, password links, secrets (both backends) ------------------------------------


async def test_parent_profiles(store_factory: StoreFactory):
    store = await store_factory()
    await store.create_user("ana@example.org", "parent", "!", groups=["7b"])
    profile = await store.save_parent_profile("ana@example.org", [("Bia", "7b"), ("Caio", "8c")])
    assert profile.children == (("Bia", "7b"), ("Caio", "8c")) and profile.language == ""
    assert await store.set_parent_language("ana@example.org", "pt-BR")
    assert not await store.set_parent_language("nobody@example.org", "pt-BR")
    again = await store.save_parent_profile("ana@example.org", [("Bia", "7b")])
    assert again.children == (("Bia", "7b"),) and again.language == "pt-BR"  # language kept
    assert [p.user for p in await store.list_parent_profiles()] == ["ana@example.org"]
    await store.delete_user("ana@example.org")
    assert await store.get_parent_profile("ana@example.org") is None


async def test_password_links_work_once_and_expire(store_factory: StoreFactory):
    store = await store_factory()
    await store.create_user("ana@example.org", "parent", "!")
    await store.put_password_token("ana@example.org", "hash-1", 2000.0, now=1000.0)
    assert await store.password_token_user("hash-1", now=1500.0) == "ana@example.org"
    assert await store.password_token_user("hash-1", now=2000.0) is None  # expired
    await store.put_password_token("ana@example.org", "hash-2", 3000.0, now=1000.0)  # replaces the first
    assert await store.use_password_token("hash-1", now=1500.0) is None
    assert await store.use_password_token("hash-2", now=1500.0) == "ana@example.org"
    assert await store.use_password_token("hash-2", now=1500.0) is None  # used up


async def test_secrets_are_made_once_and_rotated(store_factory: StoreFactory):
    store = await store_factory()
    assert await store.get_secret("report-links", "first") == "first"
    assert await store.get_secret("report-links", "second") == "first"
    await store.set_secret("report-links", "rotated")
    assert await store.get_secret("report-links", "third") == "rotated"
    health = await store.health()
    assert f"schema version {MIGRATIONS[-1][0]}" in health.detail  # the newest, on either backend


def test_the_report_counts_exactly_the_hours_of_its_weeks_and_of_retention(config: Config):
    """Boundaries: an hour starting exactly when retention begins counts, the hour before it
    does not; an hour starting exactly when the week ends belongs to no week of the report;
    safe-search rewrites are counted as made safe and blocks as blocked, nothing else."""
    zone = LONDON
    week = Week.containing(MONDAY, zone)
    previous = week.shifted(-1, zone)
    kept_since = previous.since + 3600  # retention began one hour into the previous week
    rows = [
        {"start": previous.since, "verdict": "blocked", "category": "social", "count": 100},  # before retention
        {"start": kept_since, "verdict": "blocked", "category": "social", "count": 7},  # exactly at it
        {"start": week.since, "verdict": "blocked", "category": "games", "count": 5},
        {"start": week.since + 3600, "verdict": "rewritten", "category": "", "count": 4},
        {"start": week.since + 7200, "verdict": "allowed", "category": "", "count": 3},
        {"start": week.until, "verdict": "blocked", "category": "games", "count": 1000},  # next week
        {"start": week.until + 3600, "verdict": "blocked", "category": "games", "count": 1000},
        {"start": previous.since + 7200, "verdict": "rewritten", "category": "", "count": 2},  # not a block
    ]
    devices = [
        {"hour": week.since, "verdict": "blocked", "category": "games", "device": f"d{i}"} for i in range(5)
    ] + [
        {"hour": week.since + 3600, "verdict": "rewritten", "category": "", "device": f"d{i}"} for i in range(4)
    ] + [
        {"hour": week.since + 7200, "verdict": "allowed", "category": "", "device": f"d{i}"} for i in range(3)
    ] + [{"hour": week.until, "verdict": "blocked", "category": "games", "device": "late"}]
    report = build_report(
        group(config, "7b"), config, rows, devices=devices, week=week, trend=[previous, week],
        trend_devices={previous: (7, 7)}, timetable=Timetable.for_group(group(config, "7b"), config.policy.schedules, zone),
        settings=ReportSettings(mask_below=1), now=week.until + 1, kept_since=kept_since,
    )  # fmt: skip
    assert (report.blocked.value, report.made_safe.value, report.lookups.value) == (5, 4, 12)
    assert [(p.blocked.value, p.current) for p in report.trend] == [(7, False), (5, True)]
    assert {line.category: line.blocked.value for line in report.categories if line.blocked.value} == {"games": 5}


def test_devices_count_only_inside_the_week_and_retention(config: Config):
    """With mask_below 6 the games figure shows only if six devices stand behind it: one
    device seen before retention began and one at the very end of the week do not count."""
    zone = LONDON
    week = Week.containing(MONDAY, zone)
    kept_since = week.since + 1800
    rows = [{"start": week.since + 3600, "verdict": "blocked", "category": "games", "count": 9}]
    devices = [{"hour": week.since + 3600, "verdict": "blocked", "category": "games", "device": f"d{i}"} for i in range(5)]
    outside = [
        {"hour": week.since, "verdict": "blocked", "category": "games", "device": "before-retention"},
        # (a number read back from the store, as rows are: equal to week.until, not the same object)
        {"hour": week.until + 0.0, "verdict": "blocked", "category": "games", "device": "next-week"},
    ]
    report = build_report(
        group(config, "7b"), config, rows, devices=devices + outside, week=week, trend=[week], trend_devices={},
        timetable=Timetable.for_group(group(config, "7b"), config.policy.schedules, zone),
        settings=ReportSettings(mask_below=6), now=week.until + 1, kept_since=kept_since,
    )  # fmt: skip
    assert report.blocked.masked and report.blocked.value is None
    shown = build_report(
        group(config, "7b"), config, rows, devices=devices + [{**devices[0], "device": "d5"}], week=week, trend=[week],
        trend_devices={}, timetable=Timetable.for_group(group(config, "7b"), config.policy.schedules, zone),
        settings=ReportSettings(mask_below=6), now=week.until + 1, kept_since=kept_since,
    )  # fmt: skip
    assert shown.blocked.value == 9


def test_categories_are_listed_most_blocked_first(config: Config):
    week = Week.containing(MONDAY, LONDON)
    rows = [
        {"start": week.since + 3600, "verdict": "blocked", "category": "games", "count": 5},
        {"start": week.since + 3600, "verdict": "blocked", "category": "social", "count": 9},
        {"start": week.since + 3600, "verdict": "blocked", "category": "adult", "count": 2},
    ]
    devices = [{"hour": week.since + 3600, "verdict": "blocked", "category": c, "device": f"{c}{i}"}
               for c in ("games", "social", "adult") for i in range(3)]  # fmt: skip
    report = build_report(
        group(config, "7b"), config, rows, devices=devices, week=week, trend=[week], trend_devices={},
        timetable=Timetable.for_group(group(config, "7b"), config.policy.schedules, LONDON),
        settings=ReportSettings(mask_below=1), now=week.until + 1, kept_since=week.since,
    )  # fmt: skip
    assert [line.category for line in report.categories if line.blocked.value] == ["social", "games", "adult"]


def test_report_settings_bounds():
    assert ReportSettings().trend_weeks == 8  # as documented
    ReportSettings(mask_below=1, trend_weeks=1)
    ReportSettings(trend_weeks=52)
    for bad in ({"mask_below": 0}, {"trend_weeks": 0}, {"trend_weeks": 53}):
        with pytest.raises(ValueError):
            ReportSettings(**bad)


def test_a_week_starting_exactly_when_retention_begins_is_kept():
    week = Week.containing(MONDAY, LONDON)
    kept_since = week.shifted(-2, LONDON).since  # retention begins exactly on a Monday, 00:00
    first, current = selectable_weeks(LONDON, week.since + 3600, kept_since)
    assert (first.since, current.since) == (kept_since, week.since)
    assert [w.since for w in trend_weeks(week, 8, LONDON, kept_since)] == [
        kept_since, week.shifted(-1, LONDON).since, week.since
    ]
    # one second later, that week is no longer wholly kept
    first, _ = selectable_weeks(LONDON, week.since + 3600, kept_since + 1)
    assert first.since == week.shifted(-1, LONDON).since
