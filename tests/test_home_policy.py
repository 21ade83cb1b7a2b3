"""Where a device is (at school or at home) and each group's home policy (policy/home.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import timedelta

import pytest

from filterdns.config.loader import ConfigError, config_with_policy
from filterdns.config.model import Config, EssentialEntry, GroupConfig
from filterdns.identity.roster import Identity
from filterdns.policy.engine import PolicyEngine
from filterdns.policy.groups import GroupResolver
from filterdns.policy.home import HomeSettings, home_group, pupil_policy, school_group, school_networks
from filterdns.resolver.access import NetworkSet
from filterdns.resolver.identify import ClientIdentifier
from filterdns.wire.query import parse_query
from tests.test_engine import CONFIG, Clock, at, categories

import dns.message

A = 1


@pytest.fixture
def clock() -> Clock:
    return Clock(at(9, 0))  # Monday, in a lesson


@pytest.fixture
def engine(clock: Clock) -> PolicyEngine:
    return PolicyEngine(CONFIG, categories(), clock=clock)


def test_lesson_rules_do_not_apply_at_home_and_adult_stays_blocked(engine):
    assert engine.decide("year7", "facebook.com", A).action == "block"  # lessons, at school
    home = engine.decide(home_group("year7"), "facebook.com", A)
    assert (home.action, home.group) == ("allow", "year7@home")
    adult = engine.decide(home_group("year7"), "porn.test", A)
    assert (adult.action, adult.reason, adult.category) == ("block", "category", "adult")


def test_home_floor_applies_to_groups_that_do_not_block_it_at_school():
    config = replace(CONFIG, policy=replace(CONFIG.policy, groups=(GroupConfig("open"),), home_block=("adult", "news")))
    engine = PolicyEngine(config, categories())
    assert engine.decide("open", "bbc.co.uk", A).action == "allow"
    assert engine.decide("open@home", "bbc.co.uk", A).action == "block"
    assert engine.decide("open@home", "porn.test", A).action == "block"  # protected, whatever home_block says


def test_home_keeps_the_groups_lists_and_home_policies_are_not_named_groups(engine):
    assert engine.decide("year7@home", "bad.example", A).reason == "deny-list"
    assert engine.decide("year7@home", "example.org", A).reason == "allow-list"
    assert "year7@home" not in engine.group_names
    assert engine.decide("nobody@home", "porn.test", A).group == "guests@home"  # the default group's home


def test_explain_at_home_names_the_home_policy(engine):
    explanation = engine.explain("facebook.com", "year7@home")
    assert explanation.decision.action == "allow" and explanation.windows == ()
    assert school_group(explanation.group) == "year7"


def _query() -> object:
    return parse_query(dns.message.make_query("example.org", "A").to_wire())


def test_an_encrypted_client_outside_the_school_networks_is_at_home():
    config = replace(
        CONFIG,
        policy=replace(
            CONFIG.policy,
            groups=(GroupConfig("year7", networks=(ipaddress.ip_network("10.7.0.0/16"),)),),
            school_networks=(ipaddress.ip_network("192.168.0.0/16"),),
        ),
    )
    identifier = ClientIdentifier(
        GroupResolver(config.policy.groups, "guests"), NetworkSet(()), NetworkSet(school_networks(config.policy))
    )
    pupil = Identity("p-1", "year7", True)
    assert identifier.identify("10.7.1.1", _query(), pupil).group == "year7"
    assert identifier.identify("192.168.4.4", _query(), pupil).group == "year7"
    assert identifier.identify("203.0.113.9", _query(), pupil).group == "year7@home"
    assert identifier.identify("203.0.113.9", _query()).group == "guests"  # plain DNS is never at home


def test_config_reads_school_networks_and_home_block_and_refuses_at_in_group_names():
    document = """
categories: {adult: {domains: [porn.test]}, social: {domains: [facebook.com]}}
school_networks: [10.0.0.0/8]
home_block: [social]
groups: {year7: {networks: [10.7.0.0/16]}}
"""
    policy = config_with_policy(Config(), document).policy
    assert policy.home_block == ("social",)
    assert school_networks(policy) == (ipaddress.ip_network("10.7.0.0/16"), ipaddress.ip_network("10.0.0.0/8"))
    assert config_with_policy(Config(), "groups: {y: {}}").policy.home_block == (
        "adult", "gambling", "malware", "phishing", "self-harm",
    )
    with pytest.raises(ConfigError, match="cannot contain '@'"):
        config_with_policy(Config(), "groups: {'y@home': {}}")
    with pytest.raises(ConfigError, match="unknown category"):
        config_with_policy(Config(), "home_block: [nonsense]")


def test_a_parents_bedtime_blocks_at_22_and_allows_at_08_but_essential_services(clock):
    config = replace(CONFIG, policy=replace(CONFIG.policy, timezone="Europe/London", essential=(EssentialEntry("teams.microsoft.com", "Microsoft Teams", "collaboration", "lessons"),)))
    engine = PolicyEngine(config, categories(), clock=clock)
    engine.set_home_settings({"p-1": HomeSettings(bedtime=("21:00", "07:00"))})
    key = pupil_policy("year7", "p-1")
    clock.now = at(22, 0)
    night = engine.decide(key, "example.com", A)
    assert (night.action, night.reason, night.group) == ("block", "parent", "year7@home/p-1")
    assert "bedtime" in night.detail
    assert engine.decide(key, "teams.microsoft.com", A).action == "allow"
    assert engine.decide("year7@home", "example.com", A).action == "allow"  # another pupil of year 7
    clock.now = at(8, 0, day=3)
    assert engine.decide(key, "example.com", A).action == "allow"


def test_parents_add_categories_and_pause_but_cannot_lift_the_floor(clock):
    engine = PolicyEngine(CONFIG, categories(), clock=clock)
    clock.now = at(19, 0)
    key = pupil_policy("year7", "p-1")
    engine.set_home_settings({"p-1": HomeSettings(block=("games",))})
    assert engine.decide(key, "games.test", A).action == "block"
    assert engine.decide(key, "porn.test", A).action == "block"
    assert engine.decide("year7@home", "games.test", A).action == "allow"
    engine.set_home_settings({"p-1": HomeSettings(paused_until=clock.now.timestamp() + 1800)})
    assert engine.decide(key, "bbc.co.uk", A).action == "block"
    clock.now = clock.now + timedelta(minutes=31)
    assert engine.decide(key, "bbc.co.uk", A).action == "allow"  # the pause ended by itself
    assert engine.decide(key, "games.test", A).action == "allow"  # the earlier revision is replaced


def test_a_pupil_with_settings_gets_their_own_policy_at_home_only():
    identifier = ClientIdentifier(GroupResolver((), "guests"), NetworkSet(()), NetworkSet((ipaddress.ip_network("10.0.0.0/8"),)))
    identifier.home_pupils = frozenset({"p-1"})
    at_home = identifier.identify("203.0.113.9", _query(), Identity("p-1", "year7", True))
    assert (at_home.group, at_home.policy) == ("year7@home", "year7@home/p-1")
    at_school = identifier.identify("10.1.1.1", _query(), Identity("p-1", "year7", True))
    assert (at_school.group, at_school.policy) == ("year7", "year7")
    other = identifier.identify("203.0.113.9", _query(), Identity("p-2", "year7", True))
    assert other.policy == "year7@home"
