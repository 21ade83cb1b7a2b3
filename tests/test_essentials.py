"""Essential services and locked categories in the engine, the config loader and the list build.

Essential names are never blocked by category lists (unless a list names a host below the
essential entry, or the group opts out, or a deny list names them); locked categories are
blocked for everyone whatever allows, overrides or essential entries say."""

from __future__ import annotations

import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from filterdns.config.loader import ConfigError, load_config
from filterdns.config.model import (
    CategoryConfig,
    Config,
    EssentialEntry,
    GroupConfig,
    PolicyConfig,
    SafeSearchConfig,
    ScheduleConfig,
    SourceConfig,
)
from filterdns.policy.categories import build_category_set
from filterdns.policy.engine import OverrideRule, PolicyEngine
from filterdns.policy.listformats import parse_lines

REPO = Path(__file__).resolve().parents[1]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
MONDAY_10 = datetime(2024, 9, 2, 9, 0, tzinfo=timezone.utc)  # 10:00 in London


def lists(tmp_path: Path) -> tuple[CategoryConfig, ...]:
    (tmp_path / "chat.txt").write_text("microsoft.com\nteams.microsoft.com\ndiscord.com\n")
    (tmp_path / "phishing.txt").write_text("evil-tenant.sharepoint.com\n")
    (tmp_path / "games.txt").write_text("www.google.com\n")
    (tmp_path / "illegal.txt").write_text("abuse.example\nteams.live.com\n")
    return (
        CategoryConfig("illegal", sources=(SourceConfig(str(tmp_path / "illegal.txt"), "domains", "IWF test"),), locked=True),
        CategoryConfig("chat", sources=(SourceConfig(str(tmp_path / "chat.txt"), "domains", "UT1 chat"),)),
        CategoryConfig("phishing", sources=(SourceConfig(str(tmp_path / "phishing.txt"), "domains", "BLP phishing"),)),
        CategoryConfig("games", sources=(SourceConfig(str(tmp_path / "games.txt"), "domains", "UT1 games"),)),
    )


ESSENTIAL = (
    EssentialEntry("teams.microsoft.com", "Microsoft Teams", "learning-platforms", "lessons run in Teams", "https://x"),
    EssentialEntry("teams.live.com", "Microsoft Teams", "learning-platforms", "lessons run in Teams", "https://x"),
    EssentialEntry("sharepoint.com", "OneDrive and SharePoint", "learning-platforms", "files", "https://x"),
    EssentialEntry("www.google.com", "Google search", "teaching-sites", "search", "https://x"),
)


def engine(tmp_path: Path, *groups: GroupConfig, clock=lambda: MONDAY_10, **config) -> PolicyEngine:
    categories = lists(tmp_path)
    built = build_category_set(categories, tmp_path, tmp_path, essential=[e.name for e in ESSENTIAL])
    schedules = (ScheduleConfig("lessons", "Europe/London", {d: (("09:00", "15:00"),) for d in WEEKDAYS}),)
    groups = groups or (GroupConfig("year7", block=("chat", "phishing", "games"), safe_search=SafeSearchConfig(search=True)),)
    return PolicyEngine(
        Config(policy=PolicyConfig(categories=categories, schedules=schedules, groups=groups, essential=ESSENTIAL, **config)),
        built,
        clock=clock,
    )


def test_an_essential_name_listed_by_a_category_stays_reachable_and_says_why(tmp_path):
    decision = engine(tmp_path).decide("year7", "teams.microsoft.com", 1)
    assert (decision.action, decision.reason, decision.category) == ("allow", "essential", "chat")
    assert decision.detail == "kept reachable: essential (Microsoft Teams) — listed by chat (UT1 chat)"
    # Names below the entry too, also when the list names a parent (microsoft.com).
    assert engine(tmp_path).decide("year7", "eu.teams.microsoft.com", 1).reason == "essential"
    # Names the entry does not cover stay blocked.
    assert engine(tmp_path).decide("year7", "www.microsoft.com", 1).action == "block"
    assert engine(tmp_path).decide("year7", "discord.com", 1).action == "block"


def test_a_listing_below_an_essential_entry_still_blocks_that_host(tmp_path):
    e = engine(tmp_path)
    assert e.decide("year7", "evil-tenant.sharepoint.com", 1).category == "phishing"
    assert e.decide("year7", "evil-tenant.sharepoint.com", 1).action == "block"
    assert e.decide("year7", "school.sharepoint.com", 1).action == "allow"


def test_safe_search_still_applies_to_an_essential_name(tmp_path):
    decision = engine(tmp_path).decide("year7", "www.google.com", 1)
    assert (decision.action, decision.reason) == ("rewrite", "safe-search")


def test_a_group_can_opt_out_and_a_deny_list_wins(tmp_path):
    opted_out = GroupConfig("year7", block=("chat",), essential=False)
    assert engine(tmp_path, opted_out).decide("year7", "teams.microsoft.com", 1).action == "block"
    denied = GroupConfig("year7", block=("chat",), deny_domains=("teams.microsoft.com",))
    assert engine(tmp_path, denied).decide("year7", "teams.microsoft.com", 1).reason == "deny-list"
    globally = engine(tmp_path, GroupConfig("year7", block=("chat",)), deny_domains=("microsoft.com",))
    assert globally.decide("year7", "teams.microsoft.com", 1).reason == "deny-list"


def test_explain_says_kept_reachable(tmp_path):
    text = engine(tmp_path).explain("teams.microsoft.com", "year7", MONDAY_10).render()
    assert "kept reachable: essential (Microsoft Teams) — listed by chat (UT1 chat)" in text
    assert "verdict: allow (essential)" in text


def test_names_no_list_blocks_pay_nothing_for_the_essential_check(tmp_path):
    """The essential lookup runs only for names a category blocks: unlisted names, and listed
    names not blocked now, never reach it."""

    class Counting(dict):
        lookups = 0

        def get(self, key, default=None):
            Counting.lookups += 1
            return super().get(key, default)

    e = engine(tmp_path, GroupConfig("year7", block=("chat",)))
    e._essential = Counting(e._essential)
    for name in ("unlisted.example", "www.bbc.co.uk", "evil-tenant.sharepoint.com", "www.google.com"):
        e.decide("year7", name, 1)
    assert Counting.lookups == 0
    e.decide("year7", "teams.microsoft.com", 1)
    assert Counting.lookups > 0


# -- locked categories -----------------------------------------------------------------------


def test_a_locked_category_is_blocked_for_every_group_whatever_allows_it(tmp_path):
    lax = GroupConfig("staff", allow_domains=("abuse.example",))  # blocks nothing itself
    e = engine(tmp_path, lax, allow_domains=("abuse.example",))
    decision = e.decide("staff", "www.abuse.example", 1)
    assert (decision.action, decision.reason, decision.category) == ("block", "locked", "illegal")
    assert "locked" in e.explain("abuse.example", "staff", MONDAY_10).render()
    # ...also for a group with no rules at all (the default group), and over an essential entry.
    assert e.decide("guests", "abuse.example", 1).reason == "locked"
    assert e.decide("staff", "teams.live.com", 1).reason == "locked"


def test_overrides_cannot_lift_a_locked_category(tmp_path):
    e = engine(tmp_path, GroupConfig("year7"))
    expires = time.time() + 3600
    e.set_overrides(
        [
            OverrideRule("year7", "allow", "abuse.example", "", "teacher", expires),
            OverrideRule("year7", "allow", "", "illegal", "teacher", expires),
        ]
    )
    assert e.decide("year7", "abuse.example", 1).reason == "locked"
    assert "locked" in e.lift_refusal("abuse.example")


# -- list health at build --------------------------------------------------------------------


def test_the_build_counts_the_essential_names_each_source_would_block(tmp_path, caplog):
    caplog.set_level("INFO", logger="filterdns.lists")
    built = build_category_set(lists(tmp_path), tmp_path, tmp_path, essential=[e.name for e in ESSENTIAL])
    by_label = {status.label: status.essential_blocked for status in built.statuses}
    # chat lists microsoft.com (a parent) and teams.microsoft.com; the phishing listing is
    # below sharepoint.com, so it blocks no essential name.
    assert by_label == {
        "IWF test": ("teams.live.com",),
        "UT1 chat": ("teams.microsoft.com",),
        "BLP phishing": (),
        "UT1 games": ("www.google.com",),
    }
    assert built.essential_hits["teams.microsoft.com"] == [("chat", "UT1 chat")]
    assert built.health.essential_total == 4
    lines = [r.getMessage() for r in caplog.records if "essential names it would block" in r.getMessage()]
    assert len(lines) == 4 and "UT1 chat" not in lines[1] and lines[1].endswith("essential names it would block: 1")


def test_duplicates_and_overlaps(tmp_path):
    (tmp_path / "a.txt").write_text("x.example\ny.example\n")
    (tmp_path / "b.txt").write_text("x.example\nz.example\n")
    categories = (
        CategoryConfig("one", sources=(SourceConfig(str(tmp_path / "a.txt")), SourceConfig(str(tmp_path / "b.txt")))),
        CategoryConfig("two", sources=(SourceConfig(str(tmp_path / "b.txt")),)),
    )
    health = build_category_set(categories, tmp_path, tmp_path).health
    assert health.distinct == {"one": 3, "two": 2}
    assert health.duplicates == {"one": 1, "two": 0}
    assert health.overlaps == [("one", "two", 2)]


def test_licensed_url_lists_enforce_sites_and_count_pages(tmp_path):
    parsed = parse_lines(["site.example", "https://other.example/", "page.example/a/b.jpg", "not a name/x"], "urls")
    assert sorted(parsed.domains) == ["other.example", "site.example"]
    assert (parsed.url_entries, parsed.bad_lines) == (1, 1)


# -- the shipped catalogue and the config loader ---------------------------------------------


def test_every_shipped_essential_entry_is_a_valid_name_with_a_reason_and_a_link():
    config = load_config(REPO / "config.yaml")
    entries = config.policy.essential
    assert len({e.name for e in entries}) >= 150
    kinds = {e.kind for e in entries}
    assert {"identity", "learning-platforms", "video-lessons", "device-management", "certificates", "teaching-sites"} <= kinds
    for entry in entries:
        assert parse_lines([entry.name], "domains").domains == [entry.name], entry
        assert "." in entry.name and entry.reason.endswith("."), entry
        assert entry.source.startswith("https://"), entry
    for name in ("teams.microsoft.com", "classroom.google.com", "zoom.us", "nasa.gov", "pbs.org", "ocsp.digicert.com"):
        assert name in {e.name for e in entries}
    illegal = next(c for c in config.policy.categories if c.name == "illegal")
    assert illegal.locked


def write(folder: Path, text: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_the_loader_refuses_public_suffixes_and_bad_names_in_essential_lists(tmp_path):
    (tmp_path / "essential.yaml").write_text(
        textwrap.dedent(
            """
            kinds:
              identity:
                title: Sign-in
                services:
                  Broken:
                    reason: ""
                    source: https://vendor.example/hosts
                    names: [co.uk, "bad name.example"]
            """
        )
    )
    (tmp_path / "catalogue.yaml").write_text("essential: essential.yaml\ncategories: {}\n")
    found = problems(write(tmp_path, "catalogue: catalogue.yaml\nessential_extra: [github.io, mis.school.example]\n"))
    assert any("co.uk' is a public suffix" in p for p in found)
    assert any("'bad name.example' is not a domain name" in p for p in found)
    assert any("needs 'reason'" in p for p in found)
    assert any("config.yaml:2: essential_extra" in p and "github.io' is a public suffix" in p for p in found)


def test_a_locked_category_cannot_be_unlocked_or_allowed(tmp_path):
    (tmp_path / "catalogue.yaml").write_text("categories:\n  illegal:\n    locked: true\n    domains: [abuse.example]\n")
    unlocked = write(
        tmp_path,
        """
        catalogue: catalogue.yaml
        categories:
          illegal:
            locked: false
        """,
    )
    assert problems(unlocked) == [
        f"{unlocked}:4: categories.illegal.locked: category 'illegal' is locked: it is blocked for every "
        "group at all times and nobody, the administrator included, can allow it"
    ]
    allowed = write(
        tmp_path,
        """
        catalogue: catalogue.yaml
        schedules:
          lunch: {weekly: {mon: ["12:00-13:00"]}}
        groups:
          staff:
            rules: [{during: lunch, allow: [illegal]}]
        """,
    )
    assert any("category 'illegal' is locked" in p for p in problems(allowed))
    # Replacing it to add a licensed list keeps it locked.
    (tmp_path / "iwf.txt").write_text("abuse.example/a/page.html\n")
    extended = write(
        tmp_path,
        """
        catalogue: catalogue.yaml
        categories:
          illegal:
            sources: [{file: iwf.txt, format: urls}]
        essential_extra: [mis.school.example]
        """,
    )
    config = load_config(extended)
    assert config.policy.categories[0].locked and config.policy.categories[0].sources[0].format == "urls"
    assert config.policy.essential[-1] == EssentialEntry("mis.school.example", "this school's essential list", "school", "added by the school")


def test_the_sources_that_list_a_name_are_found_in_any_syntax(tmp_path):
    """For staff looking at one false positive: which list of the category names it."""
    import gzip

    from filterdns.policy.categories import SourceStatus
    from filterdns.policy.listsource import sources_listing
    from filterdns.policy.sources import cached_copy_path

    files = {
        "plain.txt": b"teams.microsoft.com\n",
        "hosts.txt": b"0.0.0.0 other.example\n0.0.0.0\tteams.microsoft.com # chat\n",
        "adblock.txt": b"||teams.microsoft.com^\n",
        "ut1.txt": b".teams.microsoft.com\n",
        "below.txt": b"eu.teams.microsoft.com\nteams.microsoft.com.evil.example\n",
    }
    statuses = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        statuses.append(SourceStatus("chat", str(tmp_path / name), "auto", 1, 0, 0, [], None, None, label=name))
    url = "https://lists.example/chat.txt"
    cached_copy_path(tmp_path, url).write_bytes(gzip.compress(b"*.teams.microsoft.com\n"))
    statuses.append(SourceStatus("chat", url, "wildcard", 1, 0, 0, [], None, None, label="downloaded"))
    statuses.append(SourceStatus("chat", str(tmp_path / "gone.txt"), "auto", 0, 0, 0, [], None, "missing", label="gone"))
    assert sources_listing("teams.microsoft.com", statuses, tmp_path) == [
        "plain.txt", "hosts.txt", "adblock.txt", "ut1.txt", "downloaded",
    ]


def test_a_listing_of_a_parent_only_still_keeps_the_essential_entry(tmp_path):
    """UT1 lists microsoft.com as chat and not teams.microsoft.com itself: the over-reaching
    parent listing must not block the essential service below it."""
    (tmp_path / "parent").mkdir()
    (tmp_path / "parent" / "chat.txt").write_text("microsoft.com\n")
    categories = (CategoryConfig("chat", sources=(SourceConfig(str(tmp_path / "parent" / "chat.txt"), "domains", "UT1 chat"),)),)
    built = build_category_set(categories, tmp_path, tmp_path, essential=[e.name for e in ESSENTIAL])
    policy = PolicyEngine(
        Config(policy=PolicyConfig(categories=categories, groups=(GroupConfig("year7", block=("chat",)),), essential=ESSENTIAL)),
        built,
    )
    assert policy.decide("year7", "teams.microsoft.com", 1).reason == "essential"
    assert policy.decide("year7", "www.microsoft.com", 1).action == "block"


def test_a_listing_below_the_entry_in_a_category_not_blocked_now_changes_nothing(tmp_path):
    """Only a host below the entry listed in a category the group blocks is specific enough
    to block; one listed in a category the group does not block leaves the entry essential."""
    (tmp_path / "below").mkdir()
    (tmp_path / "below" / "chat.txt").write_text("sharepoint.com\n")
    (tmp_path / "below" / "games.txt").write_text("play.sharepoint.com\n")
    categories = (
        CategoryConfig("chat", sources=(SourceConfig(str(tmp_path / "below" / "chat.txt"), "domains", "UT1 chat"),)),
        CategoryConfig("games", sources=(SourceConfig(str(tmp_path / "below" / "games.txt"), "domains", "UT1 games"),)),
        CategoryConfig("social", sources=(SourceConfig(str(tmp_path / "below" / "chat.txt"), "domains", "BLP social"),)),
    )
    built = build_category_set(categories, tmp_path, tmp_path, essential=[e.name for e in ESSENTIAL])
    policy = PolicyEngine(
        Config(policy=PolicyConfig(categories=categories, groups=(GroupConfig("year7", block=("chat", "social")),),
                                   essential=ESSENTIAL)),
        built,
    )  # fmt: skip
    decision = policy.decide("year7", "play.sharepoint.com", 1)
    assert (decision.action, decision.reason) == ("allow", "essential")
    # listed by two blocked categories: the first in the config's order is named
    assert decision.category == "chat"
    assert decision.detail.startswith("kept reachable: essential (OneDrive and SharePoint) — listed by chat (UT1 chat), social")
