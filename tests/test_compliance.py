"""The compliance report's data (filterdns.reports.compliance) from synthetic events and
audit entries in a real store, on SQLite and on a throwaway PostgreSQL server: counts per
group and category, the site filter, the edges of a date range in the school's time zone,
retention, the filtering in force in words, and the changes to filtering with their actors."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from filterdns.config.loader import load_config
from filterdns.config.model import Config
from filterdns.reports import compliance
from filterdns.reports.compliance import (
    ALL_SITES,
    INDIVIDUAL_SITES_LABEL,
    MAX_DAYS,
    DateRange,
    default_range,
    load_compliance,
    parse_range,
    revision_scope,
    site_groups,
    sites,
)
from filterdns.resolver.events import QueryEvent
from filterdns.store import DAY, Store
from tests.support import stores

pg_server, store_factory, store = stores.pg_server, stores.store_factory, stores.store

LONDON = ZoneInfo("Europe/London")
JUNE = DateRange.of(date(2026, 6, 1), date(2026, 6, 30), LONDON)  # British Summer Time: UTC+1
NOW = datetime(2026, 7, 2, 12, 0, tzinfo=LONDON).timestamp()

POLICY = {
    "timezone": "Europe/London",
    "categories": {
        "games": {"description": "Online games", "domains": ["games.example"]},
        "video": {"description": "Video sites", "domains": ["video.example"]},
        "adult": {"description": "Adult content", "domains": ["adult.example"]},
        "social": {"description": "Social networks", "domains": ["social.example"]},
        "chat": {"description": "Chat and messaging", "domains": ["chat.example"]},
    },
    "schedules": {
        "lessons": {"weekly": {"mon-fri": ["08:45-15:20"]}},
        "lunch": {"weekly": {"mon-fri": ["12:00-13:00"]}},
    },
    "groups": {
        "7b": {
            "site": "North",
            "description": "Year 7, form B",
            "networks": ["10.0.7.0/24"],
            "block": ["adult", "games"],
            "rules": [{"during": "lessons", "block": ["video"]}, {"during": "lunch", "allow": ["games"]}],
            "allow": ["maths.example"],
        },
        "8c": {
            "site": "North",
            "networks": ["10.0.8.0/24"],
            "block": ["adult"],
            "deny": ["a.example", "b.example"],
            "safe_search": {"search": True, "youtube": "strict"},
            "bypass_protection": False,
        },
        "9a": {"site": "South", "networks": ["10.0.9.0/24"], "block": ["social"]},
        "staff": {"networks": ["10.0.1.0/24"]},
    },
    "default_group": "guests",
    "deny": ["global.example"],
}


def write_config(tmp_path: Path, policy: dict = POLICY) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(policy))
    return load_config(path)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


def local(*fields: int) -> float:
    """A school-time wall clock reading as a POSIX time."""
    return datetime(*fields, tzinfo=LONDON).timestamp()


def events(group: str, n: int, *, t: float, verdict: str = "allowed", category: str = "") -> list[QueryEvent]:
    return [
        QueryEvent(
            time=t, client="10.0.0.9", group=group, name=f"n{i}.example", qtype=1, verdict=verdict,
            reason=f"category:{category}" if category else "", category=category, rcode=0, latency_ms=1.0,
            answered_by="policy" if verdict == "blocked" else "cache", transport="udp",
        )
        for i in range(n)
    ]  # fmt: skip


async def seed_june(store: Store) -> None:
    t = local(2026, 6, 10, 11, 15)
    await store.insert_events(
        events("7b", 10, t=t) + events("7b", 5, t=t, verdict="blocked", category="games")
        + events("7b", 2, t=t + DAY, verdict="blocked", category="adult")
        + events("8c", 4, t=t) + events("8c", 3, t=t, verdict="blocked", category="video")
        + events("8c", 1, t=t, verdict="blocked") + events("8c", 2, t=t, verdict="rewritten")
        + events("9a", 1, t=t) + events("9a", 7, t=t, verdict="blocked", category="social")
        + events("9a", 1, t=t, verdict="blocked", category="chat")  # a teacher's block: not in the rules
        + events("old-class", 6, t=t, verdict="blocked", category="games")  # removed from the config since
    )  # fmt: skip


# --- counts --------------------------------------------------------------------------------------


async def test_counts_per_group_and_category_match_the_events(store: Store, config: Config) -> None:
    await seed_june(store)
    report = await load_compliance(store, config, ALL_SITES, JUNE, now=NOW)
    by_group = {line.group: line for line in report.counts}
    assert [line.group for line in report.counts] == ["7b", "8c", "9a", "staff", "guests", "old-class"]
    assert (by_group["7b"].queries, by_group["7b"].blocked) == (17, 7)
    assert by_group["7b"].by_category == {"games": 5, "adult": 2}
    assert (by_group["8c"].queries, by_group["8c"].blocked) == (10, 4)
    assert by_group["8c"].by_category == {"video": 3, "": 1}
    assert (by_group["9a"].queries, by_group["9a"].blocked) == (9, 8)
    assert by_group["staff"].queries == 0 and by_group["staff"].configured
    assert by_group["old-class"].blocked == 6 and not by_group["old-class"].configured
    assert (report.queries, report.blocked) == (42, 25)
    assert report.blocked_in("games") == 11 and report.blocked_in("") == 1
    assert report.complete and report.notes() == ()


async def test_a_site_counts_its_own_groups_only(store: Store, config: Config) -> None:
    await seed_june(store)
    assert sites(config) == ("North", "South")
    north = await load_compliance(store, config, "North", JUNE, now=NOW)
    assert [line.group for line in north.counts] == ["7b", "8c"]
    assert (north.queries, north.blocked) == (27, 11)
    assert [g.group for g in north.groups] == ["7b", "8c"]
    south = await load_compliance(store, config, "South", JUNE, now=NOW)
    assert [(line.group, line.queries, line.blocked) for line in south.counts] == [("9a", 9, 8)]
    with pytest.raises(ValueError, match="no group belongs to a site called 'West'"):
        await load_compliance(store, config, "West", JUNE, now=NOW)
    assert [g.name for g in site_groups(config, ALL_SITES)] == ["7b", "8c", "9a", "staff", "guests"]


async def test_the_range_runs_from_midnight_to_midnight_school_time(store: Store, config: Config) -> None:
    inside = [local(2026, 6, 1, 0, 0), local(2026, 6, 30, 23, 59)]
    outside = [local(2026, 5, 31, 23, 30), local(2026, 7, 1, 0, 0)]
    for n, t in enumerate(inside + outside, start=1):  # 1, 2 inside; 3, 4 outside
        await store.insert_events(events("7b", n, t=t, verdict="blocked", category="games"))
    # In UTC, the first of June starts an hour later and the thirtieth ends an hour later.
    assert JUNE.since == datetime(2026, 5, 31, 23, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    report = await load_compliance(store, config, "North", JUNE, now=NOW)
    assert report.counts[0].blocked_in("games") == 1 + 2

    # A day when the clocks go forward has 23 hours; the range still ends at local midnight.
    spring = DateRange.of(date(2026, 3, 29), date(2026, 3, 29), LONDON)
    assert spring.until - spring.since == 23 * 3600 and spring.days == 1


async def test_counts_older_than_retention_are_left_out_and_the_report_says_so(store: Store, config: Config) -> None:
    await seed_june(store)
    later = local(2027, 7, 16, 0, 0)  # 400 days of counts: kept from 2026-06-11 00:00
    report = await load_compliance(store, config, "North", JUNE, now=later)
    assert report.counts_incomplete and not report.audit_incomplete
    assert report.blocked == 2 and report.counts[0].by_category == {"adult": 2}  # the 10th is gone, the 11th kept
    assert report.notes() == ("Counts from before 2026-06-11 are no longer kept: the figures start then.",)


# --- the filtering in force ------------------------------------------------------------------------


async def test_the_filtering_in_force_in_words_and_the_categories_blocked(store: Store, config: Config) -> None:
    await seed_june(store)
    report = await load_compliance(store, config, ALL_SITES, JUNE, now=NOW)
    rules = {g.group: g for g in report.groups}
    assert rules["7b"].words == (
        "Always blocked: adult, games.",
        "Blocked during lessons: video.",
        "Allowed during lunch: games.",
        "Safe search is not enforced.",
        "YouTube is not restricted.",
        "Bypass protection is on: browsers' own encrypted DNS is switched off, so the filter cannot be bypassed that way.",
        "Allow list: 1 domain for this group, 0 domains for the whole school.",
        "Deny list: 0 domains for this group, 1 domain for the whole school.",
    )
    assert "Safe search is on: Google, Bing and DuckDuckGo hide explicit results." in rules["8c"].words
    assert "YouTube is in its strict Restricted Mode." in rules["8c"].words
    assert "Bypass protection is off: devices may use their own encrypted DNS." in rules["8c"].words
    assert (rules["8c"].deny_domains, rules["8c"].school_deny_domains) == (2, 1)
    assert rules["guests"].words[0] == "No category is blocked at all times."

    categories = {c.category: c for c in report.categories}
    assert [c.category for c in report.categories] == ["adult", "games", "social", "video", "chat", ""]
    assert categories["adult"].always == ("7b", "8c") and categories["adult"].description == "Adult content"
    assert categories["video"].scheduled == (("7b", ("lessons",)),) and categories["video"].always == ()
    assert not categories["chat"].in_policy and categories["chat"].description == "Chat and messaging"
    assert categories[""].label == INDIVIDUAL_SITES_LABEL

    south = await load_compliance(store, config, "South", JUNE, now=NOW)
    assert [c.category for c in south.categories] == ["social", "chat", ""]  # "": the school-wide deny list


# --- changes to filtering ----------------------------------------------------------------------------


def edited(policy: dict, group: str, **fields: object) -> dict:
    groups = {**policy["groups"], group: {**policy["groups"][group], **fields}}
    return {**policy, "groups": groups}


async def test_changes_to_filtering_with_their_actors_per_site(store: Store, config: Config) -> None:
    t = local(2026, 6, 3, 9, 0)
    documents = [POLICY]
    for change in (
        lambda doc: edited(doc, "7b", block=["adult", "games", "social"]),  # North
        lambda doc: {
            **doc,
            "categories": {**doc["categories"], "gambling": {"description": "Bets", "domains": ["bet.example"]}},
        },
        lambda doc: edited(doc, "9a", block=["social", "games"]),  # South
        lambda doc: edited(doc, "9a", site="North"),  # moved: concerns both sites
    ):
        documents.append(change(documents[-1]))
    for n, doc in enumerate(documents, start=1):
        await store.add_revision(yaml.safe_dump(doc), "someone", now=t)
    log = [
        (t - 3 * DAY, "ada", "policy.change", "revision 1", {"comment": "before the period"}),
        (t, "config file", "policy.import", "revision 1", {"file": "/etc/filterdns/config.yaml"}),
        (t + 60, "ada", "policy.change", "revision 2", {"comment": "7b: block social"}),
        (t + 120, "bob", "policy.change", "revision 3", {"comment": "add category gambling"}),
        (t + 180, "carl", "policy.change", "revision 4", {"comment": "9a: block games"}),
        (t + 200, "ada", "policy.change", "revision 5", {"comment": "9a joins North"}),
        (
            t + 240,
            "tom",
            "override.add",
            "7b",
            {"kind": "allow", "category": "video", "domain": "", "minutes": 50, "id": 7},
        ),
        (t + 300, "tom", "override.revoke", "7", {}),
        (t + 360, "10.0.9.4", "review.request", "x.example", {"group": "9a", "id": 1}),
        (t + 420, "ada", "review.approved", "x.example", {"group": "9a", "id": 1}),
        (t + 480, "tom", "login", "tom", {}),
        (local(2026, 7, 1, 0, 0), "ada", "policy.change", "revision 4", {"comment": "after the period"}),
    ]
    for when, actor, action, target, detail in log:
        await store.audit(actor, action, target, detail, now=when)

    everything = await load_compliance(store, config, ALL_SITES, JUNE, now=NOW)
    listed = [(c.actor, c.action, c.target, c.scope, c.summary) for c in everything.changes]
    assert listed == [
        ("config file", "policy.import", "revision 1", "whole school", "policy loaded from /etc/filterdns/config.yaml"),
        ("ada", "policy.change", "revision 2", "7b", "7b: block social"),
        ("bob", "policy.change", "revision 3", "whole school", "add category gambling"),
        ("carl", "policy.change", "revision 4", "9a", "9a: block games"),
        ("ada", "policy.change", "revision 5", "9a", "9a joins North"),
        ("tom", "override.add", "7b", "7b", "allow video (category) for 50 min"),
        ("tom", "override.revoke", "7", "7b", "override 7 ended early"),
        ("ada", "review.approved", "x.example", "9a", "unblocking x.example approved (added to the allow list)"),
    ]
    assert [c.time for c in everything.changes] == sorted(c.time for c in everything.changes)
    assert everything.changes[2].school_wide and everything.changes[1].groups == ("7b",)

    north = await load_compliance(store, config, "North", JUNE, now=NOW)
    assert [c.target for c in north.changes] == ["revision 1", "revision 2", "revision 3", "revision 5", "7b", "7"]
    south = await load_compliance(store, config, "South", JUNE, now=NOW)
    assert [c.target for c in south.changes] == ["revision 1", "revision 3", "revision 4", "revision 5", "x.example"]


async def test_a_revoke_is_attributed_through_an_override_added_before_the_period(store: Store, config: Config) -> None:
    await store.audit("tess", "override.add", "9a", {"kind": "block", "category": "games", "minutes": 1440, "id": 3},
                      now=JUNE.since - 3600)  # fmt: skip
    await store.audit("tess", "override.revoke", "3", now=JUNE.since + 3600)
    south = await load_compliance(store, config, "South", JUNE, now=NOW)
    assert [(c.action, c.scope) for c in south.changes] == [("override.revoke", "9a")]
    assert (await load_compliance(store, config, "North", JUNE, now=NOW)).changes == ()


async def test_the_list_of_changes_keeps_the_latest_when_there_are_too_many(
    store: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compliance, "AUDIT_PAGE", 2)  # paging through the audit log, too
    for minute in range(5):
        await store.audit("tom", "override.add", "7b", {"id": minute}, now=JUNE.since + 60 * minute)
    changes, truncated = await compliance.policy_changes(store, config, "North", JUNE.since, JUNE.until, limit=3)
    assert truncated and [c.summary for c in changes] == ["override 2", "override 3", "override 4"]
    report = await load_compliance(store, config, "North", JUNE, now=NOW)
    assert len(report.changes) == 5 and not report.changes_truncated  # the default limit
    shortened = dataclasses.replace(report, changes=report.changes[2:], changes_truncated=True)
    assert shortened.notes() == ("Only the latest 3 changes are listed; the audit log has them all.",)


def test_a_revision_touches_the_groups_whose_entry_changed() -> None:
    before = yaml.safe_dump(POLICY)
    assert revision_scope(before, before) == (False, {})
    assert revision_scope(before, yaml.safe_dump(edited(POLICY, "8c", block=[]))) == (
        False,
        {"8c": frozenset({"North"})},
    )
    moved = revision_scope(before, yaml.safe_dump(edited(POLICY, "9a", site="North")))
    assert moved == (False, {"9a": frozenset({"North", "South"})})
    assert revision_scope(before, yaml.safe_dump({**POLICY, "deny": []}))[0] is True


# --- the period -------------------------------------------------------------------------------------


def test_periods_are_validated() -> None:
    now = local(2026, 7, 1, 0, 30)  # still 30 June in UTC: "today" is the school's
    default = default_range(LONDON, now)
    assert (default.first, default.last, default.days) == (date(2026, 4, 2), date(2026, 7, 1), 91)
    assert parse_range("", "", LONDON, now) == default
    assert parse_range("2026-06-01", "", LONDON, now).first == date(2026, 6, 1)
    assert parse_range("2025-07-01", "2026-06-30", LONDON, now).days == 365
    assert DateRange.of(date(2024, 1, 1), date(2024, 12, 31), LONDON).days == MAX_DAYS
    for first, last, problem in (
        ("2026-06-30", "2026-06-01", "the first day must not be after the last day"),
        ("2025-06-01", "2026-06-30", f"a report covers at most {MAX_DAYS} days"),
        ("June", "", "from: 'June' is not a date"),
        ("", "2026-13-01", "to: '2026-13-01' is not a date"),
        ("2026-07-02", "2026-07-03", "the period starts in the future"),
        ("0001-01-01", "0001-01-02", "too long ago"),
    ):
        with pytest.raises(ValueError, match=problem):
            parse_range(first, last, LONDON, now)
