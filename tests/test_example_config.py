"""The shipped config.yaml does what its comments promise, over a realistic school day.

The policy is built exactly as the service builds it (``build_policy``) from the curated local
lists; ``data_dir`` points at an empty folder so no downloaded copy of an upstream list can
change the answers, and nothing touches the network.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from filterdns.config.loader import load_config
from filterdns.config.model import Config
from filterdns.policy.engine import Decision, PolicyEngine
from filterdns.server.active_policy import Policy, build_policy
from filterdns.wire.query import TYPE_A

EXAMPLE = Path(__file__).resolve().parents[1] / "config.yaml"
LONDON = ZoneInfo("Europe/London")

# Tuesday 24 November 2026 is an ordinary term day (GMT). The timetable in config.yaml:
# lessons 08:45-10:45, 11:05-12:25, 13:15-15:15; lunch 12:25-13:15; after school 15:15-17:30;
# break 10:45-11:05 belongs to no schedule.
DAY = "2026-11-24"
BEFORE_SCHOOL, LESSON, BREAK, LUNCH, AFTERNOON, AFTER_SCHOOL, EVENING = (
    f"{DAY}T{t}" for t in ("08:00", "09:30", "10:50", "12:40", "13:30", "16:00", "18:00")
)
CHRISTMAS_LUNCH = "2026-12-21T12:40"  # a Monday in the Christmas holidays
INSET_LUNCH = "2027-02-22T12:40"  # INSET day: no pupils, no lunch window
SATURDAY_LUNCH = "2026-11-28T12:40"
SUMMER_LESSON = "2027-06-15T09:30"  # a Tuesday in British Summer Time
SUMMER_LUNCH = "2027-06-15T12:40"

NXDOMAIN, NODATA = 3, 0


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Config:
    return load_config(EXAMPLE).with_node(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def policy(config) -> Policy:
    return build_policy(config)


@pytest.fixture
def decide(config, policy) -> Callable[[str, str, str], Decision]:
    """``decide(time in London, group, name)``: a fresh engine whose clock reads that time."""

    def at(when: str, group: str, name: str) -> Decision:
        moment = datetime.fromisoformat(when).replace(tzinfo=LONDON)
        engine = PolicyEngine(config, policy.categories, clock=lambda: moment)
        return engine.decide(group, name, TYPE_A)

    return at


# (time, group, name, action, reason or category) — the last field is the decision's category
# for category decisions, otherwise its reason.
SCHOOL_DAY = [
    # Year 7: social and games only at lunch; chat and AI chatbots never.
    (BEFORE_SCHOOL, "year7", "www.tiktok.com", "block", "social"),
    (LESSON, "year7", "www.tiktok.com", "block", "social"),
    (BREAK, "year7", "www.tiktok.com", "block", "social"),
    (BREAK, "year7", "www.roblox.com", "block", "games"),
    (LUNCH, "year7", "www.tiktok.com", "allow", "social"),
    (LUNCH, "year7", "www.roblox.com", "allow", "games"),
    (LUNCH, "year7", "discord.com", "block", "chat"),
    (LUNCH, "year7", "chatgpt.com", "block", "ai-chat"),
    (AFTERNOON, "year7", "www.tiktok.com", "block", "social"),
    (AFTER_SCHOOL, "year7", "www.roblox.com", "block", "games"),
    (LESSON, "year7", "pornhub.com", "block", "adult"),
    (LESSON, "year7", "www.bbc.co.uk", "allow", "default"),
    (LESSON, "year7", "www.childline.org.uk", "allow", "allow-list"),
    # Year 8: chat and AI blocked in lessons only; games also after school.
    (LESSON, "year8", "chatgpt.com", "block", "ai-chat"),
    (LESSON, "year8", "discord.com", "block", "chat"),
    (BREAK, "year8", "chatgpt.com", "allow", "ai-chat"),
    (BREAK, "year8", "discord.com", "allow", "chat"),
    (BREAK, "year8", "www.instagram.com", "block", "social"),
    (LUNCH, "year8", "www.instagram.com", "allow", "social"),
    (AFTER_SCHOOL, "year8", "www.roblox.com", "allow", "games"),
    (AFTER_SCHOOL, "year8", "www.instagram.com", "block", "social"),
    (EVENING, "year8", "www.roblox.com", "block", "games"),
    (EVENING, "year8", "chatgpt.com", "allow", "ai-chat"),
    # Staff: only security blocks.
    (LESSON, "staff", "www.tiktok.com", "allow", "social"),
    (LESSON, "staff", "discord.com", "allow", "chat"),
    (LESSON, "staff", "dns.google", "allow", "bypass"),
    (LESSON, "staff", "malware.wicar.org", "block", "malware"),
    (LESSON, "staff", "pornhub.com", "allow", "adult"),
    # Guests: adult, gambling, security and bypass only.
    (LESSON, "guests", "pornhub.com", "block", "adult"),
    (LESSON, "guests", "www.bet365.com", "block", "gambling"),
    (LESSON, "guests", "www.roblox.com", "allow", "games"),
    (LESSON, "guests", "www.tiktok.com", "allow", "social"),
    (LESSON, "guests", "cloudflare-dns.com", "block", "bypass"),
    # Library: social and chat blocked in lessons; its own allow list wins over 'social'.
    (LESSON, "library", "www.reddit.com", "block", "social"),
    (LESSON, "library", "discord.com", "block", "chat"),
    (LUNCH, "library", "www.reddit.com", "allow", "social"),
    (LUNCH, "library", "www.roblox.com", "block", "games"),
    (LESSON, "library", "www.goodreads.com", "allow", "allow-list"),
    # Encrypted DNS endpoints are in 'bypass', blocked for pupils all day.
    (LESSON, "year7", "dns.google", "block", "bypass"),
    (LUNCH, "year8", "cloudflare-dns.com", "block", "bypass"),
    (LUNCH, "year7", "nordvpn.com", "block", "bypass"),
]

NOT_A_SCHOOL_DAY = [
    (CHRISTMAS_LUNCH, "year7", "www.tiktok.com", "block", "social"),
    (CHRISTMAS_LUNCH, "year8", "www.instagram.com", "block", "social"),
    ("2026-12-21T09:30", "year8", "chatgpt.com", "allow", "ai-chat"),  # no lessons in the holidays
    ("2026-12-21T16:00", "year8", "www.roblox.com", "block", "games"),  # no after-school club
    (INSET_LUNCH, "year7", "www.roblox.com", "block", "games"),
    (SATURDAY_LUNCH, "year7", "www.tiktok.com", "block", "social"),
    ("2026-11-28T09:30", "library", "www.reddit.com", "allow", "social"),
    # British Summer Time: the windows are local time, not UTC.
    (SUMMER_LESSON, "year8", "chatgpt.com", "block", "ai-chat"),
    (SUMMER_LUNCH, "year7", "www.tiktok.com", "allow", "social"),
]


@pytest.mark.parametrize(("when", "group", "name", "action", "why"), SCHOOL_DAY + NOT_A_SCHOOL_DAY)
def test_scenario(decide, when, group, name, action, why):
    decision = decide(when, group, name)
    assert decision.action == action, decision.detail
    assert why in (decision.category, decision.reason), decision
    assert decision.group == group


def test_scheduled_blocks_name_their_window(decide):
    decision = decide(LESSON, "year8", "chatgpt.com")
    assert (decision.reason, decision.schedule_window) == ("scheduled-category", "Tue 08:45-10:45")
    lunch = decide(LUNCH, "year7", "www.tiktok.com")
    assert lunch.schedule_window == "Tue 12:25-13:15"
    assert "allowed for year7 during lunch" in lunch.detail


@pytest.mark.parametrize(
    ("name", "rcode"),
    [("use-application-dns.net", NXDOMAIN), ("mask.icloud.com", NXDOMAIN), ("mask-h2.icloud.com", NXDOMAIN), ("_dns.resolver.arpa", NODATA)],
)
@pytest.mark.parametrize("group", ["year7", "year8", "library", "guests", "staff"])
def test_bypass_names_are_answered_with_their_rcode_for_every_group(decide, name, rcode, group):
    # Staff keep bypass protection on too (config.yaml: bypass_protection: true).
    decision = decide(LUNCH, group, name)
    assert (decision.action, decision.reason, decision.rcode_override) == ("block", "bypass-protection", rcode)


@pytest.mark.parametrize(
    ("group", "name", "target"),
    [
        ("year7", "www.google.co.uk", "forcesafesearch.google.com"),
        ("year7", "www.google.com", "forcesafesearch.google.com"),
        ("year7", "www.bing.com", "strict.bing.com"),
        ("year7", "www.youtube.com", "restrict.youtube.com"),
        ("year7", "m.youtube.com", "restrict.youtube.com"),
        ("year8", "www.google.co.uk", "forcesafesearch.google.com"),
        ("year8", "www.youtube.com", "restrictmoderate.youtube.com"),
        ("library", "www.youtube.com", "restrictmoderate.youtube.com"),
        ("library", "duckduckgo.com", "safe.duckduckgo.com"),
        ("staff", "www.google.co.uk", ""),
        ("staff", "www.youtube.com", ""),
        ("guests", "www.google.co.uk", ""),
        ("guests", "www.youtube.com", ""),
    ],
)
def test_safe_search(decide, group, name, target):
    decision = decide(LESSON, group, name)
    assert decision.action == ("rewrite" if target else "allow")
    assert decision.rewrite_target == target


@pytest.mark.parametrize(
    ("address", "mac", "group"),
    [
        ("10.10.1.20", None, "staff"),
        ("10.10.2.99", None, "staff"),
        ("fd4e:7a21:9c3b:2::44", None, "staff"),
        ("10.10.7.25", None, "year7"),
        ("fd4e:7a21:9c3b:7::25", None, "year7"),
        ("10.10.8.3", None, "year8"),
        ("10.10.20.40", None, "library"),
        ("10.10.101.7", None, "guests"),
        ("10.10.0.1", None, "guests"),  # the router itself is deliberately in no group
        ("192.0.2.1", None, "guests"),
        ("10.10.7.25", "3c:22:fb:12:34:56", "staff"),  # the technician's laptop on pupil Wi-Fi
    ],
)
def test_clients_land_in_the_right_group(policy, address, mac, group):
    assert policy.identifier.group_for(address, mac) == group


def test_blocks_are_answered_with_the_null_address_for_a_minute(config, decide):
    assert decide(LESSON, "year7", "www.tiktok.com").block_mode == "null_ip"
    assert (config.policy.blocking.mode, config.policy.blocking.ttl) == ("null_ip", 60)


def test_the_curated_lists_load_cleanly(policy):
    local = [s for s in policy.categories.statuses if not s.location.startswith(("http://", "https://"))]
    assert len(local) == 17
    assert all(s.error is None and s.bad_lines == 0 and s.entries > 0 for s in local), local
