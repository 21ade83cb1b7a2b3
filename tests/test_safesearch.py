"""Safe search CNAME targets per engine and per group setting."""

from __future__ import annotations

import pytest

from filterdns.config.model import SafeSearchConfig
from filterdns.policy.safesearch import GOOGLE_SUFFIXES, safe_search_target

SEARCH = SafeSearchConfig(search=True)
OFF = SafeSearchConfig()


@pytest.mark.parametrize(
    "name, target",
    [
        ("www.google.com", "forcesafesearch.google.com"),
        ("google.com", "forcesafesearch.google.com"),
        ("www.google.co.uk", "forcesafesearch.google.com"),
        ("www.google.com.br", "forcesafesearch.google.com"),
        ("google.de", "forcesafesearch.google.com"),
        ("www.bing.com", "strict.bing.com"),
        ("bing.com", "strict.bing.com"),
        ("duckduckgo.com", "safe.duckduckgo.com"),
        ("html.duckduckgo.com", "safe.duckduckgo.com"),
        ("start.duckduckgo.com", "safe.duckduckgo.com"),
    ],
)
def test_search_engines(name, target):
    assert safe_search_target(name, SEARCH) == target
    assert safe_search_target(name, OFF) is None


@pytest.mark.parametrize(
    "name", ["mail.google.com", "forcesafesearch.google.com", "www.google.example", "google.co", "www.bing.net"]
)
def test_other_names_untouched(name):
    assert safe_search_target(name, SEARCH) is None


def test_google_suffix_list_is_clean():
    assert len(GOOGLE_SUFFIXES) == len(set(GOOGLE_SUFFIXES)) > 150
    assert all(s == s.lower().strip(".") for s in GOOGLE_SUFFIXES)


@pytest.mark.parametrize(
    "name",
    ["www.youtube.com", "m.youtube.com", "youtubei.googleapis.com", "youtube.googleapis.com", "www.youtube-nocookie.com"],
)
def test_youtube_modes(name):
    assert safe_search_target(name, SafeSearchConfig(youtube="strict")) == "restrict.youtube.com"
    assert safe_search_target(name, SafeSearchConfig(youtube="moderate")) == "restrictmoderate.youtube.com"
    assert safe_search_target(name, SafeSearchConfig(youtube="off")) is None
    # Search safe search alone leaves YouTube alone.
    assert safe_search_target(name, SEARCH) is None


def test_youtube_alone_leaves_search_alone():
    assert safe_search_target("www.google.com", SafeSearchConfig(youtube="strict")) is None
