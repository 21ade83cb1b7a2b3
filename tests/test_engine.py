"""The policy engine: order of rules, schedules, caching and explanations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from filterdns.config.model import (
    CategoryConfig,
    Config,
    GroupConfig,
    PolicyConfig,
    SafeSearchConfig,
    ScheduleConfig,
    ScheduledRule,
)
from filterdns.policy.engine import PolicyEngine

LONDON = ZoneInfo("Europe/London")
A = 1
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


class FakeIndex:
    """Suffix walk over a dict of domain -> mask; counts lookups to observe caching."""

    def __init__(self, listing: dict[str, int]):
        self.listing = listing
        self.calls = 0

    def _suffixes(self, name: str) -> list[str]:
        labels = name.split(".")
        return [".".join(labels[i:]) for i in range(len(labels))]

    def match(self, name: str) -> int:
        self.calls += 1
        mask = 0
        for suffix in self._suffixes(name):
            mask |= self.listing.get(suffix, 0)
        return mask

    def explain(self, name: str) -> list[tuple[str, int]]:
        return [(s, self.listing[s]) for s in self._suffixes(name) if s in self.listing]


@dataclass
class FakeCategorySet:
    names: tuple[str, ...]
    index: FakeIndex
    descriptions: dict[str, str] = field(default_factory=dict)
    essential_hits: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def mask_of(self, names) -> int:
        return sum(1 << self.names.index(n) for n in set(names))

    def names_in(self, mask: int) -> list[str]:
        return [n for i, n in enumerate(self.names) if mask >> i & 1]


# Bit order deliberately differs from the config order (adult, social, games, news).
NAMES = ("social", "games", "adult", "news")
SOCIAL, GAMES, ADULT, NEWS = (1 << i for i in range(4))


def categories(listing: dict[str, int] | None = None) -> FakeCategorySet:
    default = {
        "porn.test": ADULT,
        "facebook.com": SOCIAL,
        "example.org": SOCIAL,
        "games.test": GAMES,
        "youtube.com": GAMES,
        "bbc.co.uk": NEWS,
        "mixed.test": SOCIAL | ADULT,
    }
    return FakeCategorySet(NAMES, FakeIndex(default if listing is None else listing), {"social": "Social networks"})


CONFIG = Config(
    policy=PolicyConfig(
        categories=tuple(CategoryConfig(n) for n in ("adult", "social", "games", "news")),
        schedules=(
            ScheduleConfig(
                "lessons",
                "Europe/London",
                {d: (("08:45", "10:15"), ("10:30", "12:00"), ("13:00", "15:00")) for d in WEEKDAYS},
            ),
            ScheduleConfig("lunch", "Europe/London", {d: (("12:00", "13:00"),) for d in WEEKDAYS}),
        ),
        groups=(
            GroupConfig(
                "year7",
                block=("adult",),
                rules=(ScheduledRule("lessons", block=("social", "games")),),
                allow_domains=("example.org",),
                deny_domains=("bad.example",),
                safe_search=SafeSearchConfig(search=True, youtube="strict"),
            ),
            GroupConfig(
                "staff",
                block=("adult", "social"),
                rules=(ScheduledRule("lunch", allow=("social",)),),
                block_mode="nxdomain",
                bypass_protection=False,
            ),
        ),
        default_group="guests",
        allow_domains=("school.example",),
        deny_domains=("malware.test", "ads.example.org"),
    )
)


class Clock:
    def __init__(self, when: datetime):
        self.now = when

    def __call__(self) -> datetime:
        return self.now


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    """Monday 2024-09-02 (BST) in London wall time, given to the engine as UTC."""
    return datetime(2024, 9, day, hour, minute, tzinfo=LONDON).astimezone(timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock(at(9, 0))


@pytest.fixture
def engine(clock: Clock) -> PolicyEngine:
    return PolicyEngine(CONFIG, categories(), clock=clock)


def test_always_blocked_category(engine):
    decision = engine.decide("year7", "www.porn.test", A)
    assert (decision.action, decision.reason, decision.category) == ("block", "category", "adult")
    assert decision.detail == "adult is blocked for year7 at all times"
    assert decision.block_mode == CONFIG.policy.blocking.mode  # the global default
    assert decision.rcode_override is None and decision.schedule_window == ""
    assert engine.decide("staff", "porn.test", A).block_mode == "nxdomain"


def test_first_category_by_config_order(engine):
    assert engine.decide("year7", "mixed.test", A).category == "adult"


def test_scheduled_block_during_lessons_allowed_at_lunch(engine, clock):
    decision = engine.decide("year7", "facebook.com", A)
    assert (decision.action, decision.reason, decision.category) == ("block", "scheduled-category", "social")
    assert decision.schedule_window == "Mon 08:45-10:15"
    assert decision.detail == "social is blocked for year7 during lessons (Mon 08:45-10:15)"
    clock.now = at(12, 30)
    decision = engine.decide("year7", "facebook.com", A)
    assert (decision.action, decision.reason, decision.category) == ("allow", "default", "social")
    assert decision.detail == "social is not blocked for year7 now"


def test_scheduled_allow_lifts_an_always_block(engine, clock):
    assert engine.decide("staff", "facebook.com", A).reason == "category"
    clock.now = at(12, 30)
    decision = engine.decide("staff", "facebook.com", A)
    assert (decision.action, decision.schedule_window) == ("allow", "Mon 12:00-13:00")
    assert decision.detail == "social is allowed for staff during lunch (Mon 12:00-13:00)"


def test_group_allow_wins_over_category_and_says_so(engine, clock):
    decision = engine.decide("year7", "example.org", A)
    assert (decision.action, decision.reason, decision.category) == ("allow", "allow-list", "social")
    assert decision.detail == "example.org is on year7's allow list, which wins over category social"
    sub = engine.decide("year7", "www.example.org", A)
    assert sub.detail == "www.example.org is under example.org, on year7's allow list, which wins over category social"
    clock.now = at(12, 30)  # nothing to override at lunch
    decision = engine.decide("year7", "example.org", A)
    assert (decision.reason, decision.category, decision.detail) == (
        "allow-list",
        "",
        "example.org is on year7's allow list",
    )


def test_group_allow_wins_over_more_specific_global_deny(engine):
    assert engine.decide("year7", "ads.example.org", A).reason == "allow-list"
    staff = engine.decide("staff", "ads.example.org", A)
    assert (staff.action, staff.reason) == ("block", "deny-list")
    assert staff.detail == "ads.example.org is on the global deny list"


def test_global_allow(engine):
    decision = engine.decide("staff", "www.school.example", A)
    assert (decision.action, decision.reason) == ("allow", "allow-list")
    assert decision.detail == "www.school.example is under school.example, on the global allow list"


def test_deny_lists(engine):
    group_deny = engine.decide("year7", "bad.example", A)
    assert (group_deny.action, group_deny.reason, group_deny.detail) == (
        "block",
        "deny-list",
        "bad.example is on year7's deny list",
    )
    assert engine.decide("staff", "bad.example", A).action == "allow"
    assert engine.decide("staff", "x.malware.test", A).reason == "deny-list"


def test_bypass_protection(engine):
    canary = engine.decide("year7", "use-application-dns.net", A)
    assert (canary.action, canary.reason, canary.rcode_override, canary.nodata) == (
        "block",
        "bypass-protection",
        3,
        False,
    )
    assert engine.decide("year7", "mask.icloud.com", A).rcode_override == 3
    assert engine.decide("year7", "mask-h2.icloud.com", 65).rcode_override == 3
    ddr = engine.decide("year7", "_dns.resolver.arpa", 64)
    assert (ddr.action, ddr.rcode_override, ddr.nodata) == ("block", 0, True)
    # Exact names only, and the group can switch it off.
    assert engine.decide("year7", "x.use-application-dns.net", A).action == "allow"
    assert engine.decide("staff", "use-application-dns.net", A).action == "allow"


def test_safe_search_after_categories(engine, clock):
    google = engine.decide("year7", "www.google.co.uk", A)
    assert (google.action, google.reason) == ("rewrite", "safe-search")
    assert google.rewrite_target == "forcesafesearch.google.com"
    assert engine.decide("year7", "www.youtube.com", A).action == "block"  # games during lessons
    clock.now = at(12, 30)
    youtube = engine.decide("year7", "www.youtube.com", A)
    assert (youtube.action, youtube.rewrite_target) == ("rewrite", "restrict.youtube.com")
    assert engine.decide("staff", "www.google.co.uk", A).action == "allow"


def test_default_allow_is_shared(engine):
    first = engine.decide("year7", "unlisted.test", A)
    assert (first.action, first.reason, first.category) == ("allow", "default", "")
    assert engine.decide("year7", "other.test", A) is first


def test_unknown_group_uses_default_group(engine):
    decision = engine.decide("nobody", "porn.test", A)
    assert (decision.group, decision.action) == ("guests", "allow")
    assert decision.detail == "adult is not blocked for guests now"
    assert engine.decide("nobody", "use-application-dns.net", A).reason == "bypass-protection"


def test_decision_cache_isolates_groups(engine):
    for _ in range(3):
        assert engine.decide("year7", "facebook.com", A).action == "block"
        assert engine.decide("staff", "facebook.com", A).action == "block"
        assert engine.decide("year7", "example.org", A).action == "allow"
        assert engine.decide("staff", "example.org", A).action == "block"
        assert engine.decide("staff", "example.org", A).group == "staff"
        assert engine.decide("year7", "example.org", A).group == "year7"


def test_decisions_are_cached_until_a_window_changes():
    index = categories().index
    clock = Clock(at(8, 44))
    engine = PolicyEngine(CONFIG, FakeCategorySet(NAMES, index), clock=clock)
    allowed = engine.decide("year7", "facebook.com", A)
    assert allowed.action == "allow"
    calls = index.calls
    clock.now = at(8, 44) + timedelta(seconds=59)
    assert engine.decide("year7", "facebook.com", A) is allowed
    assert index.calls == calls  # served from the cache
    clock.now = at(8, 45)  # lessons start
    blocked = engine.decide("year7", "facebook.com", A)
    assert (blocked.action, blocked.schedule_window) == ("block", "Mon 08:45-10:15")
    assert index.calls == calls + 1
    clock.now = at(9, 30)  # same window: still cached
    assert engine.decide("year7", "facebook.com", A) is blocked
    clock.now = at(10, 30)  # the next lesson: the label changes
    assert engine.decide("year7", "facebook.com", A).schedule_window == "Mon 10:30-12:00"
    clock.now = at(8, 0)  # the clock going back is handled too
    assert engine.decide("year7", "facebook.com", A).action == "allow"


def test_decision_cache_is_bounded(clock):
    engine = PolicyEngine(CONFIG, categories(), clock=clock, decision_cache_size=4)
    for i in range(20):
        engine.decide("year7", f"n{i}.test", A)
    assert len(engine._decisions) <= 4


def test_replace_categories_takes_effect_at_once(engine):
    assert engine.decide("year7", "porn.test", A).action == "block"
    engine.replace_categories(categories({"facebook.com": SOCIAL}))
    assert engine.decide("year7", "porn.test", A).action == "allow"
    assert engine.decide("year7", "facebook.com", A).action == "block"


def test_explain(engine):
    explanation = engine.explain("WWW.Example.org.", "year7", at(9, 0))
    assert explanation.name == "www.example.org"
    assert explanation.group == "year7"
    assert explanation.listings == (("example.org", ("social",)),)
    assert explanation.list_entries == (("example.org", "year7's allow list"),)
    assert explanation.blocked_categories == ("adult", "social", "games")
    assert [(w.schedule, w.label) for w in explanation.windows] == [("lessons", "Mon 08:45-10:15")]
    assert explanation.decision.reason == "allow-list"
    text = explanation.render()
    assert "listed: example.org in social (Social networks)" in text
    assert "open window: lessons Mon 08:45-10:15 (2024-09-02 08:45-10:15 BST)" in text
    assert "verdict: allow (allow-list)" in text
    assert "which wins over category social" in text


def test_explain_mixed_listing_and_lists(engine):
    explanation = engine.explain("ads.example.org", "staff", at(12, 30))
    assert explanation.list_entries == (("ads.example.org", "the global deny list"),)
    assert explanation.blocked_categories == ("adult",)
    assert [w.label for w in explanation.windows] == ["Mon 12:00-13:00"]
    assert "nothing" not in explanation.render()
    assert "blocked for guests now: nothing" in engine.explain("x.test", "guests").render()


def test_explain_at_another_time_leaves_the_cache_alone(engine, clock):
    clock.now = at(12, 30)
    allowed = engine.decide("year7", "facebook.com", A)
    cached = dict(engine._decisions)
    explanation = engine.explain("facebook.com", "year7", at(9, 0))
    assert explanation.decision.action == "block"
    assert explanation.decision.detail == "social is blocked for year7 during lessons (Mon 08:45-10:15)"
    assert engine._decisions == cached
    assert engine.decide("year7", "facebook.com", A) is allowed
    assert engine.explain("facebook.com", "year7").decision.action == "allow"  # now, from the clock


def test_schedule_in_another_zone_than_the_clock(engine, clock):
    clock.now = datetime(2024, 9, 2, 4, 0, tzinfo=ZoneInfo("America/New_York"))  # 09:00 in London
    assert engine.decide("year7", "facebook.com", A).reason == "scheduled-category"


def test_group_names_include_the_default(engine):
    assert engine.group_names == ("year7", "staff", "guests")
