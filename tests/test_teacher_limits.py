"""What a teacher's override (or a review request) can never lift, decided by the engine itself
and checked before anything is stored: public suffixes, protected listings at or below the
name, bypass names and the global deny list. The end-to-end walk is in
``test_e2e_teacher_limits.py``; these pin each rule on a real category index."""

from __future__ import annotations

import time

import pytest

from filterdns.config.model import CategoryConfig, Config, GroupConfig, PolicyConfig
from filterdns.policy.categories import CategorySet
from filterdns.policy.domainindex import DomainIndex
from filterdns.policy.engine import OverrideRule, PolicyEngine

NAMES = ("adult", "self-harm", "social")
ADULT, SELF_HARM, SOCIAL = range(3)
LISTED = [
    ("pornhub.com", ADULT),
    ("adult.sites.example.org", ADULT),
    ("sanctioned-suicide.net", SELF_HARM),
    ("tiktok.com", SOCIAL),
    # a name that ends in "e.org" inside the packed blob, to catch a match across two entries
    ("www.example.org", SOCIAL),
]
CONFIG = Config(
    policy=PolicyConfig(
        categories=tuple(CategoryConfig(name) for name in NAMES),
        groups=(GroupConfig("year7", block=NAMES),),
        deny_domains=("blocked.example",),
        protected_categories=("adult", "self-harm"),
    )
)


def engine() -> PolicyEngine:
    index = DomainIndex.build((name, bit, False) for name, bit in LISTED)
    return PolicyEngine(CONFIG, CategorySet(NAMES, index))


def allow(domain: str = "", category: str = "") -> OverrideRule:
    return OverrideRule("year7", "allow", domain, category, "tess", time.time() + 900)


def test_listed_below_finds_only_whole_names_under_the_suffix():
    listed = [("a.b.example.org", ADULT), ("xample.org", SOCIAL), ("e.org", ADULT), ("sites.example.org", SOCIAL)]
    index = DomainIndex.build((name, bit, False) for name, bit in listed)
    assert index.listed_below("example.org", 1 << ADULT) == ["a.b.example.org"]
    assert index.listed_below("example.org", 1 << SOCIAL) == ["sites.example.org"]
    assert index.listed_below("org", 1 << ADULT, limit=5) == ["a.b.example.org", "e.org"]
    assert index.listed_below("a.b.example.org", 1 << ADULT) == []  # the name itself is not below


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("com", "public suffix"),
        ("co.uk", "public suffix"),
        ("github.io", "public suffix"),
        ("pornhub.com", "listed as adult"),
        ("www.pornhub.com", "listed as adult"),
        ("example.org", "(adult.sites.example.org is listed as adult)"),
        ("sites.example.org", "(adult.sites.example.org is listed as adult)"),
        ("sanctioned-suicide.net", "listed as self-harm"),
        ("application-dns.net", None),
        ("use-application-dns.net", "bypass protection"),
        ("icloud.com", "bypass protection"),
        ("blocked.example", "global deny list"),
        ("www.blocked.example", "global deny list"),
    ],
)
def test_lift_refusal_names_the_reason(name: str, why: str | None):
    typed = "".join(name)  # a new string object, as a request would bring: compared by value
    refusal = engine().lift_refusal(typed)
    if why is None:
        assert refusal == ""
    else:
        assert why in refusal


def test_tiktok_may_be_lifted():
    assert engine().lift_refusal("tiktok.com") == ""
    assert engine().lift_refusal("www.example.org") == ""


def test_a_stored_allow_override_for_a_public_suffix_lifts_nothing_protected():
    """Defence in depth: even if an override for ``com`` reached the store (an older node, a
    direct write), the engine keeps the protections."""
    policy = engine()
    assert policy.decide("year7", "www.pornhub.com", 1).action == "block"
    policy.set_overrides([allow("com"), allow("net"), allow("example"), allow("example.org"), allow("icloud.com")])
    for name in ("www.pornhub.com", "sanctioned-suicide.net", "blocked.example", "mask.icloud.com"):
        decision = policy.decide("year7", name, 1)
        assert decision.action == "block", name
        assert "does not lift it" in decision.detail, name
    assert "; adult is a protected category, so the override by tess" in policy.decide("year7", "pornhub.com", 1).detail
    assert policy.decide("year7", "adult.sites.example.org", 1).action == "block"
    # what is not protected is lifted as the override says
    assert policy.decide("year7", "www.tiktok.com", 1).action == "allow"


def test_a_stored_category_allow_for_a_protected_category_is_ignored():
    policy = engine()
    policy.set_overrides([allow(category="adult"), allow(category="social")])
    assert policy.decide("year7", "pornhub.com", 1).action == "block"
    assert policy.decide("year7", "tiktok.com", 1).action == "allow"
