"""The order of the engine's rules where two of them meet, each pinned by a case that fails
if the order changes: bypass protection against the allow and deny lists, overlapping
schedule windows, and a teacher's overrides (their expiry included) against the rules."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from filterdns.config.model import CategoryConfig, Config, GroupConfig, PolicyConfig, ScheduleConfig, ScheduledRule
from filterdns.policy.categories import CategorySet
from filterdns.policy.domainindex import DomainIndex
from filterdns.policy.engine import OverrideRule, PolicyEngine

LONDON = ZoneInfo("Europe/London")
A = 1
NAMES = ("social", "news")
SOCIAL, NEWS = range(2)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def monday(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 9, 2, hour, minute, tzinfo=LONDON).astimezone(timezone.utc)


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when

    def __call__(self) -> datetime:
        return self.now


SCHEDULES = (
    ScheduleConfig("lessons", "Europe/London", {d: (("09:00", "15:00"),) for d in WEEKDAYS}),
    ScheduleConfig("club", "Europe/London", {d: (("12:00", "13:00"),) for d in WEEKDAYS}),
)


def engine(*groups: GroupConfig, clock: Clock | None = None, **config) -> PolicyEngine:
    index = DomainIndex.build([("tiktok.com", SOCIAL, False), ("bbc.co.uk", NEWS, False)])
    return PolicyEngine(
        Config(policy=PolicyConfig(categories=tuple(CategoryConfig(n) for n in NAMES), schedules=SCHEDULES, groups=groups, **config)),
        CategorySet(NAMES, index),
        clock=clock or Clock(monday(10)),
    )


def test_bypass_protection_beats_the_allow_lists():
    policy = engine(
        GroupConfig("year7", allow_domains=("icloud.com",)),
        GroupConfig("staff", allow_domains=("icloud.com",), bypass_protection=False),
        allow_domains=("use-application-dns.net",),
    )
    for name in ("mask.icloud.com", "use-application-dns.net"):
        decision = policy.decide("year7", name, A)
        assert (decision.reason, decision.rcode_override) == ("bypass-protection", 3), name
    assert policy.decide("year7", "www.icloud.com", A).reason == "allow-list"
    assert policy.decide("staff", "mask.icloud.com", A).reason == "allow-list"


def test_deny_lists_apply_to_bypass_names_where_protection_is_off_and_bypass_keeps_its_answer():
    policy = engine(
        GroupConfig("year7", deny_domains=("mask.icloud.com",)),
        GroupConfig("staff", deny_domains=("mask.icloud.com",), bypass_protection=False),
    )
    # with protection on, the bypass rule's NXDOMAIN (what switches Private Relay off) wins
    assert policy.decide("year7", "mask.icloud.com", A).rcode_override == 3
    staff = policy.decide("staff", "mask.icloud.com", A)
    assert (staff.action, staff.reason, staff.rcode_override) == ("block", "deny-list", None)


def test_with_overlapping_windows_the_later_rule_wins():
    blocked_then_allowed = GroupConfig(
        "a", rules=(ScheduledRule("lessons", block=("social",)), ScheduledRule("club", allow=("social",)))
    )
    allowed_then_blocked = GroupConfig(
        "b", rules=(ScheduledRule("club", allow=("social",)), ScheduledRule("lessons", block=("social",)))
    )
    clock = Clock(monday(12, 30))  # both windows open
    policy = engine(blocked_then_allowed, allowed_then_blocked, clock=clock)
    assert policy.decide("a", "tiktok.com", A).action == "allow"
    assert policy.decide("b", "tiktok.com", A).action == "block"
    clock.now = monday(10)  # only lessons open
    assert policy.decide("a", "tiktok.com", A).action == "block"
    assert policy.decide("b", "tiktok.com", A).action == "block"


def test_an_override_expires_in_the_engine_itself_without_a_new_set_of_overrides():
    clock = Clock(monday(10))
    policy = engine(GroupConfig("year7", rules=(ScheduledRule("lessons", block=("social",)),)), clock=clock)
    expires = (clock.now + timedelta(minutes=15)).timestamp()
    policy.set_overrides([
        OverrideRule("year7", "allow", "tiktok.com", "", "tess", expires),
        OverrideRule("year7", "block", "", "news", "tess", expires),
    ])  # fmt: skip
    assert policy.decide("year7", "www.tiktok.com", A).reason == "override"
    assert policy.decide("year7", "bbc.co.uk", A).action == "block"
    clock.now += timedelta(minutes=14, seconds=59)
    assert policy.decide("year7", "www.tiktok.com", A).action == "allow"
    clock.now += timedelta(seconds=2)  # past expiry; nobody called set_overrides
    assert policy.decide("year7", "www.tiktok.com", A).reason == "scheduled-category"
    assert policy.decide("year7", "bbc.co.uk", A).action == "allow"


def test_a_category_block_override_blocks_and_says_so():
    policy = engine(GroupConfig("year7"))
    assert policy.decide("year7", "bbc.co.uk", A).action == "allow"
    policy.set_overrides([OverrideRule("year7", "block", "", "news", "tess", time.time() + 600)])
    decision = policy.decide("year7", "www.bbc.co.uk", A)
    assert (decision.action, decision.reason, decision.category) == ("block", "override", "news")
    assert policy.decide("staff", "www.bbc.co.uk", A).action == "allow"  # other groups untouched


def test_a_domain_block_override_blocks_an_allowed_name_and_says_so():
    policy = engine(GroupConfig("year7"))
    assert policy.decide("year7", "www.bbc.co.uk", A).action == "allow"
    policy.set_overrides([OverrideRule("year7", "block", "bbc.co.uk", "", "tess", time.time() + 600)])
    decision = policy.decide("year7", "www.bbc.co.uk", A)
    assert (decision.action, decision.reason) == ("block", "override")
    assert decision.detail.startswith("bbc.co.uk is blocked for year7 by an override by tess")
    assert policy.decide("year7", "bbc.co.uk.evil.example", A).action == "allow"  # a suffix, not a substring


def test_every_change_that_may_alter_a_decision_moves_the_generation():
    """The pipeline's answer memo forgets its answers when the generation moves."""
    policy = engine(GroupConfig("year7"))
    seen = [policy.generation]
    policy.set_overrides([OverrideRule("year7", "block", "bbc.co.uk", "", "tess", time.time() + 600)])
    seen.append(policy.generation)
    policy.replace_categories(CategorySet(NAMES, DomainIndex.build([("tiktok.com", SOCIAL, False)])))
    seen.append(policy.generation)
    assert seen == [seen[0], seen[0] + 1, seen[0] + 2]


def test_the_decision_cache_keeps_several_names():
    class CountingIndex:
        def __init__(self, index: DomainIndex) -> None:
            self.index, self.calls = index, 0

        def match(self, name: str) -> int:
            self.calls += 1
            return self.index.match(name)

        def __getattr__(self, attribute: str):
            return getattr(self.index, attribute)

    index = CountingIndex(DomainIndex.build([("tiktok.com", SOCIAL, False)]))
    policy = PolicyEngine(
        Config(policy=PolicyConfig(categories=tuple(CategoryConfig(n) for n in NAMES), groups=(GroupConfig("year7"),))),
        CategorySet(NAMES, index),  # type: ignore[arg-type]
        clock=Clock(monday(10)),
    )
    for name in ("a.example", "b.example", "a.example", "b.example"):
        policy.decide("year7", name, A)
    assert index.calls == 2  # each name worked out once, then cached side by side


def test_a_category_missing_from_the_index_blocks_nothing_else():
    """A category whose lists failed to load is absent from the index: a group blocking it
    must not end up blocking another category's names instead."""
    only_news = CategorySet(("news",), DomainIndex.build([("bbc.co.uk", 0, False)]))
    policy = PolicyEngine(
        Config(policy=PolicyConfig(categories=tuple(CategoryConfig(n) for n in NAMES), groups=(GroupConfig("year7", block=("social",)),))),
        only_news,
        clock=Clock(monday(10)),
    )
    assert policy.decide("year7", "bbc.co.uk", A).action == "allow"


def test_a_window_that_opens_moves_the_generation():
    clock = Clock(monday(8))
    policy = engine(GroupConfig("year7", rules=(ScheduledRule("lessons", block=("social",)),)), clock=clock)
    assert policy.decide("year7", "tiktok.com", A).action == "allow"
    before = policy.generation
    clock.now = monday(9, 30)  # lessons open: the blocked set changes
    assert policy.decide("year7", "tiktok.com", A).action == "block"
    assert policy.generation > before


def test_the_most_specific_list_of_the_best_rank_is_named():
    policy = engine(
        GroupConfig("year7", allow_domains=("bbc.co.uk",), deny_domains=("tiktok.com",)),
        allow_domains=("co.uk",),
        deny_domains=("com",),
    )
    allowed = policy.decide("year7", "www.bbc.co.uk", A)
    assert allowed.detail == "www.bbc.co.uk is under bbc.co.uk, on year7's allow list"
    denied = policy.decide("year7", "www.tiktok.com", A)
    assert denied.detail == "www.tiktok.com is under tiktok.com, on year7's deny list"


def test_a_decision_is_immutable_because_it_is_shared():
    """One Decision object serves every name with the same verdict: changing it for one
    query would change it for all."""
    import dataclasses

    import pytest

    decision = engine(GroupConfig("year7")).decide("year7", "unlisted.example", A)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.detail = "changed"  # type: ignore[misc]


def test_a_teacher_override_lifts_a_group_deny_entry_and_says_allowed():
    """Only the global deny list is beyond a teacher; the group's own list is theirs to lift."""
    policy = engine(GroupConfig("year7", deny_domains=("tiktok.com",)))
    assert policy.decide("year7", "www.tiktok.com", A).reason == "deny-list"
    policy.set_overrides([OverrideRule("year7", "allow", "tiktok.com", "", "tess", time.time() + 600)])
    decision = policy.decide("year7", "www.tiktok.com", A)
    assert (decision.action, decision.reason) == ("allow", "override")
    assert decision.detail.startswith("tiktok.com is allowed for year7 by an override by tess")


def test_an_allow_entry_under_an_unliftable_override_keeps_its_own_words():
    """The administrator's allow entry decides a protected name a teacher's override could
    not lift: the decision is the allow list's, without the override's refusal appended."""
    index = DomainIndex.build([("pornhub.com", SOCIAL, False)])
    policy = PolicyEngine(
        Config(policy=PolicyConfig(
            categories=tuple(CategoryConfig(n) for n in NAMES),
            groups=(GroupConfig("year7", block=("social",), allow_domains=("pornhub.com",)),),
            protected_categories=("social",),
        )),
        CategorySet(NAMES, index),
        clock=Clock(monday(10)),
    )  # fmt: skip
    policy.set_overrides([OverrideRule("year7", "allow", "com", "", "tess", time.time() + 600)])
    decision = policy.decide("year7", "pornhub.com", A)
    assert (decision.action, decision.reason) == ("allow", "allow-list")
    assert "does not lift" not in decision.detail


def test_an_allow_entry_over_a_scheduled_block_names_the_window():
    policy = engine(GroupConfig("year7", rules=(ScheduledRule("lessons", block=("social",)),), allow_domains=("tiktok.com",)))
    decision = policy.decide("year7", "tiktok.com", A)
    assert (decision.reason, decision.category, decision.schedule_window) == ("allow-list", "social", "Mon 09:00-15:00")


def test_a_listed_name_allowed_now_is_named_by_its_own_category():
    """At lunch social is allowed by an open rule; a news name (listed, never blocked) is
    named as news, not as the category the rule allows."""
    clock = Clock(monday(12, 30))
    policy = engine(
        GroupConfig("year7", rules=(ScheduledRule("lessons", block=("social",)), ScheduledRule("club", allow=("social",)))),
        clock=clock,
    )
    decision = policy.decide("year7", "www.bbc.co.uk", A)
    assert (decision.action, decision.category) == ("allow", "news")


def test_a_locked_category_missing_from_the_index_locks_nothing_else():
    """A locked category whose list failed to load is absent from the index: no other
    category may become locked in its place."""
    only_social = CategorySet(("social",), DomainIndex.build([("tiktok.com", 0, False)]))
    categories = (CategoryConfig("illegal", locked=True), CategoryConfig("social"))
    policy = PolicyEngine(
        Config(policy=PolicyConfig(categories=categories, groups=(GroupConfig("year7"),))),
        only_social,
        clock=Clock(monday(10)),
    )
    assert policy.decide("year7", "tiktok.com", A).action == "allow"


def test_the_decision_cache_stays_within_its_size():
    index = DomainIndex.build([("tiktok.com", SOCIAL, False)])
    policy = PolicyEngine(
        Config(policy=PolicyConfig(categories=tuple(CategoryConfig(n) for n in NAMES), groups=(GroupConfig("year7"),))),
        CategorySet(NAMES, index),
        clock=Clock(monday(10)),
        decision_cache_size=300,
    )
    for number in range(1000):
        policy.decide("year7", f"n{number}.example", A)
    assert len(policy._decisions) <= 300  # a million names asked must not mean a million entries


def three_categories(clock: Clock, *groups: GroupConfig, listed=(("both.example", (0, 1)),)) -> PolicyEngine:
    """news, social and games, in that priority order; ``listed`` names with their bits."""
    names = ("news", "social", "games")
    index = DomainIndex.build((name, bit, False) for name, bits in listed for bit in bits)
    return PolicyEngine(
        Config(policy=PolicyConfig(categories=tuple(CategoryConfig(n) for n in names), schedules=SCHEDULES, groups=groups)),
        CategorySet(names, index),
        clock=clock,
    )


def test_a_name_in_two_categories_is_named_by_the_one_an_open_rule_allows():
    """Listed as news and social; at lunch a rule allows social: the answer says social is
    allowed at lunch, whatever other overrides are in force."""
    group = GroupConfig("year7", rules=(ScheduledRule("lessons", block=("social",)), ScheduledRule("club", allow=("social",))))
    policy = three_categories(Clock(monday(12, 30)), group)
    decision = policy.decide("year7", "both.example", A)
    assert (decision.action, decision.category, decision.schedule_window) == ("allow", "social", "Mon 12:00-13:00")
    policy.set_overrides([OverrideRule("year7", "block", "", "games", "tess", time.time() + 600)])
    decision = policy.decide("year7", "both.example", A)
    assert (decision.action, decision.category) == ("allow", "social")


def test_another_groups_override_stops_nothing_for_this_one():
    policy = engine(GroupConfig("year7", block=("social",)), GroupConfig("year8", block=("social",)))
    policy.set_overrides([
        OverrideRule("year8", "block", "", "news", "tom", time.time() + 600),
        OverrideRule("year7", "allow", "", "social", "tess", time.time() + 600),
    ])  # fmt: skip
    assert policy.decide("year7", "tiktok.com", A).action == "allow"
    assert policy.decide("year7", "bbc.co.uk", A).action == "allow"
    assert policy.decide("year8", "bbc.co.uk", A).action == "block"


def test_an_override_for_a_category_missing_from_the_index_changes_nothing_else():
    policy = engine(GroupConfig("year7"))
    policy.set_overrides([OverrideRule("year7", "block", "", "games", "tess", time.time() + 600)])
    assert policy.decide("year7", "tiktok.com", A).action == "allow"
    assert policy.decide("year7", "bbc.co.uk", A).action == "allow"


def test_a_name_in_one_of_two_locked_categories_is_named_by_its_own():
    names = ("illegal", "terror", "social")
    index = DomainIndex.build([("abuse.example", 1, False)])  # listed as terror only
    policy = PolicyEngine(
        Config(policy=PolicyConfig(
            categories=(CategoryConfig("illegal", locked=True), CategoryConfig("terror", locked=True), CategoryConfig("social")),
            groups=(GroupConfig("year7"),),
        )),
        CategorySet(names, index),
        clock=Clock(monday(10)),
    )  # fmt: skip
    decision = policy.decide("year7", "abuse.example", A)
    assert (decision.action, decision.category) == ("block", "terror")


def test_an_override_for_a_group_that_sorts_first_stays_with_that_group():
    policy = engine(GroupConfig("year7", block=("social",)), GroupConfig("staff", block=("social",)))
    policy.set_overrides([OverrideRule("staff", "allow", "", "social", "tom", time.time() + 600)])
    assert policy.decide("staff", "tiktok.com", A).action == "allow"
    assert policy.decide("year7", "tiktok.com", A).action == "block"


def test_a_block_override_of_a_protected_category_blocks():
    """Protection stops a teacher allowing a protected category, never blocking one."""
    policy = engine(GroupConfig("staff"), protected_categories=("social",))
    assert policy.decide("staff", "tiktok.com", A).action == "allow"
    policy.set_overrides([OverrideRule("staff", "block", "", "social", "tom", time.time() + 600)])
    assert policy.decide("staff", "tiktok.com", A).action == "block"


def test_a_list_entry_above_the_name_is_said_to_be_above_it():
    policy = engine(GroupConfig("year7", allow_domains=("tiktok.com",)))
    assert policy.decide("year7", "a.tiktok.com", A).detail.startswith("a.tiktok.com is under tiktok.com, on year7's allow list")
    assert policy.decide("year7", "tiktok.com", A).detail.startswith("tiktok.com is on year7's allow list")
