"""Policy document edits: pure (input untouched), tidy, and accepted by the real loader."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from filterdns.config.loader import ConfigError, config_with_policy, load_config
from filterdns.config.policytext import dump_policy, policy_document
from filterdns.policy import document as d

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def doc() -> dict:
    return {
        "timezone": "Europe/London",
        "categories": {"exam": {"description": "Exam season", "domains": ["quizlet.com"]}},
        "schedules": {
            "lessons": {"weekly": {"mon-fri": ["08:45-10:45", "11:05-12:25"]}},
            "lunch": {"weekly": {"mon-fri": ["12:25-13:15"]}},
        },
        "groups": {
            "year7": {
                "description": "Year 7",
                "networks": ["10.10.7.0/24"],
                "block": ["exam"],
                "rules": [{"during": "lunch", "allow": ["exam"]}],
                "allow": ["bbc.co.uk"],
            },
            "guests": None,
        },
        "default_group": "guests",
        "allow": ["school.example"],
        "deny": [],
        "blocking": {"ttl": 60, "mode": "null_ip"},
    }


def _apply(doc: dict, tmp_path: Path):
    """Load the document the way Control.apply_policy does: through the real loader."""
    config = tmp_path / "config.yaml"
    config.write_text("upstream: {servers: [127.0.0.1]}\n")
    return config_with_policy(load_config(config), d.render(doc))


def test_operations_return_new_documents_and_never_touch_their_input(doc):
    original = copy.deepcopy(doc)
    results = [
        d.set_group(doc, "year8", {"description": "Year 8", "networks": ["10.10.8.0/24"]}),
        d.set_group(doc, "year7", {"description": None}),
        d.remove_group(doc, "year7"),
        d.set_group_networks(doc, "year7", ["10.10.70.0/24"], ["AA:bb:cc:dd:ee:ff"]),
        d.set_group_categories(doc, "year7", []),
        d.set_group_rules(doc, "year7", [{"during": "lessons", "block": ["exam"]}]),
        d.set_group_safe_search(doc, "year7", search=True, youtube="strict"),
        d.set_group_block_mode(doc, "year7", "nxdomain"),
        d.add_to_allow(doc, "example.org", "year7"),
        d.remove_from_allow(doc, "bbc.co.uk", "year7"),
        d.add_to_deny(doc, "bad.example"),
        d.remove_from_allow(doc, "school.example"),
        d.add_custom_category(doc, "local", "Local list", domains=["a.example"]),
        d.remove_category(doc, "exam"),
        d.set_schedule(doc, "after", weekly={"mon-fri": ["15:15-17:30"]}),
        d.remove_schedule(doc, "lunch"),
    ]
    assert doc == original
    for result in results:
        assert result != original
        # Nested values are copies too: editing a result cannot reach the input.
        result.setdefault("groups", {}).setdefault("year7", {})["block"] = ["changed"]
    assert doc == original


def test_group_edits(doc):
    new = d.set_group(doc, "year8", {"description": "Year 8", "networks": ["10.10.8.0/24"], "block": ["exam"]})
    assert list(new["groups"]) == ["year7", "guests", "year8"]
    assert new["groups"]["year8"]["block"] == ["exam"]

    new = d.set_group_networks(new, "year8", ["10.10.8.0/24", "10.10.8.0/24", "fd00:8::/64"], [])
    assert new["groups"]["year8"]["networks"] == ["10.10.8.0/24", "fd00:8::/64"]
    assert "macs" not in new["groups"]["year8"]  # never adds an empty key

    new = d.set_group_categories(new, "year7", [])
    assert new["groups"]["year7"]["block"] == []  # ...and never drops an existing one

    new = d.set_group_rules(new, "year7", [{"during": "lessons", "block": ["exam"], "allow": []}])
    assert new["groups"]["year7"]["rules"] == [{"during": "lessons", "block": ["exam"]}]

    new = d.set_group_safe_search(new, "year7", search=True, youtube="off")
    assert new["groups"]["year7"]["safe_search"] == {"search": True, "youtube": "off"}

    new = d.set_group_block_mode(new, "year7", "refused")
    assert new["groups"]["year7"]["block_mode"] == "refused"
    assert "block_mode" not in d.set_group_block_mode(new, "year7", None)["groups"]["year7"]

    with pytest.raises(KeyError):
        d.set_group_categories(doc, "no-such-group", ["exam"])


def test_the_default_group_is_written_out_when_edited_and_cannot_be_removed(doc):
    new = d.set_group_categories(doc, "guests", ["exam"])
    assert new["groups"]["guests"] == {"block": ["exam"]}
    del doc["groups"]["guests"]
    assert d.set_group_categories(doc, "guests", ["exam"])["groups"]["guests"] == {"block": ["exam"]}
    with pytest.raises(ValueError, match="default group"):
        d.remove_group(doc, "guests")


def test_allow_and_deny_lists_normalise_and_do_not_duplicate(doc):
    new = d.add_to_allow(doc, " BBC.co.uk. ", "year7")
    assert new["groups"]["year7"]["allow"] == ["bbc.co.uk"]
    new = d.add_to_allow(new, "*.Wikipedia.org", "year7")
    assert new["groups"]["year7"]["allow"] == ["bbc.co.uk", "wikipedia.org"]
    new = d.remove_from_allow(new, "WIKIPEDIA.ORG", "year7")
    assert new["groups"]["year7"]["allow"] == ["bbc.co.uk"]

    new = d.add_to_deny(doc, "bad.example")
    assert new["deny"] == ["bad.example"]
    assert d.remove_from_deny(new, "bad.example")["deny"] == []
    new = d.add_to_deny(doc, "bad.example", "year7")
    assert new["groups"]["year7"]["deny"] == ["bad.example"]

    with pytest.raises(KeyError):
        d.remove_from_deny(doc, "not-there.example")
    with pytest.raises(ValueError):
        d.add_to_allow(doc, "  ")


def test_custom_category_from_domains_or_url(doc):
    new = d.add_custom_category(doc, "local", " Our own list ", domains=["A.example", "a.example", " ", "b.example"])
    assert new["categories"]["local"] == {"description": "Our own list", "domains": ["a.example", "b.example"]}
    new = d.add_custom_category(doc, "remote", "From a URL", url="https://lists.example/x.txt", list_format="hosts")
    assert new["categories"]["remote"] == {
        "description": "From a URL",
        "sources": [{"url": "https://lists.example/x.txt", "format": "hosts"}],
    }
    with pytest.raises(ValueError):
        d.add_custom_category(doc, "empty", "Nothing in it")
    assert "exam" not in d.remove_category(doc, "exam")["categories"]


def test_schedules(doc):
    new = d.set_schedule(
        doc,
        "after",
        weekly={"mon-thu": ["15:15-17:30"], "fri": []},
        exceptions=[{"name": "Sports day", "dates": "2027-06-18", "windows": []}],
        timezone="Europe/Dublin",
    )
    assert new["schedules"]["after"] == {
        "timezone": "Europe/Dublin",
        "weekly": {"mon-thu": ["15:15-17:30"], "fri": []},
        "exceptions": [{"name": "Sports day", "dates": "2027-06-18"}],
    }
    assert "lunch" not in d.remove_schedule(doc, "lunch")["schedules"]
    with pytest.raises(KeyError):
        d.remove_schedule(doc, "nope")


def test_render_is_stable_and_parses_back(doc):
    shuffled = dict(reversed(list(doc.items())))
    shuffled["groups"] = {"year7": dict(reversed(list(doc["groups"]["year7"].items()))), "guests": None}
    text = d.render(doc)
    assert d.render(shuffled) == text
    assert d.parse(text) == doc
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "-"))]
    assert keys == ["timezone", "categories", "schedules", "groups", "default_group", "allow", "deny", "blocking"]
    assert text.index("  year7:\n    description:") > 0
    assert "blocking:\n  mode: null_ip\n  ttl: 60" in text
    assert d.parse("") == {}
    with pytest.raises(TypeError):
        d.parse("- a list\n")


def test_render_keeps_values_that_yaml_would_reinterpret():
    doc = {
        "schedules": {"s": {"weekly": {"mon": ["08:45-10:30"]}, "exceptions": [{"dates": "2027-02-22"}]}},
        "groups": {"g": {"networks": ["fd00:10::/64", "::1"], "safe_search": {"search": False, "youtube": "off"}}},
    }
    # Shared lists (what YAML anchors load as) are written out in full, not as &id001 labels.
    shared = ["10.0.0.0/8"]
    doc["trusted_forwarders"] = shared
    doc["groups"]["h"] = {"networks": shared}
    text = d.render(doc)
    assert "&" not in text and "*id" not in text
    assert d.parse(text) == doc


def test_example_config_policy_renders_to_the_same_text_and_loads(tmp_path):
    text = policy_document(REPO / "config.yaml")
    assert d.render(d.parse(text)) == text
    edited = d.render(d.set_group_categories(d.parse(text), "year7", ["adult"]))
    config = config_with_policy(load_config(REPO / "config.yaml"), edited)
    assert next(g for g in config.policy.groups if g.name == "year7").block == ("adult",)


def test_a_files_policy_and_its_console_rendering_are_one_text(tmp_path):
    """The file's policy imported at start and the same policy re-rendered by a console edit
    are written by one dumper, so a revision diff never shows keys moving."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "blocking: {ttl: 60, mode: nxdomain}\n"
        "groups:\n"
        "  year7:\n"
        "    safe_search: {youtube: strict, search: true}\n"
        "    block: [social]\n"
        "    networks: [10.10.7.0/24]\n"
        "    rules: [{allow: [social], during: lunch}]\n"
        "    description: Year 7\n"
        "schedules:\n"
        "  lunch: {weekly: {mon-fri: [12:25-13:15]}, timezone: Europe/London}\n"
        "categories:\n"
        "  social: {domains: [tiktok.com], description: Social media}\n"
        "upstream: {servers: [127.0.0.1]}\n"
        "alerts: {rules: {r: {email: [a@school.example], threshold: 3, categories: [social]}}}\n"
    )
    text = policy_document(config)
    assert policy_document(config) == text
    assert d.render(d.parse(text)) == text
    assert dump_policy(d.parse(text)) == text
    lines = d.diff(text, d.render(d.add_to_allow(d.parse(text), "bbc.co.uk", "year7")))
    changed = [line for line in lines[2:] if line.startswith(("+", "-"))]
    assert changed == ["+    allow:", "+    - bbc.co.uk"]
    config_with_policy(load_config(config), text)


def test_edited_documents_load_and_mistakes_are_reported_with_lines(doc, tmp_path):
    edited = d.set_group_rules(doc, "year7", [{"during": "lessons", "block": ["exam"]}])
    edited = d.add_to_allow(edited, "wikipedia.org", "year7")
    config = _apply(edited, tmp_path)
    year7 = next(g for g in config.policy.groups if g.name == "year7")
    assert year7.rules[0].schedule == "lessons" and year7.allow_domains == ("bbc.co.uk", "wikipedia.org")

    broken = d.set_group_categories(doc, "year7", ["exma"])
    with pytest.raises(ConfigError) as error:
        _apply(broken, tmp_path)
    assert any("groups.year7.block[0]" in p and "did you mean 'exam'" in p for p in error.value.problems)


def test_diff_names_the_changed_key(doc):
    before = d.render(doc)
    after = d.render(d.add_to_allow(d.set_group_block_mode(doc, "year7", "nxdomain"), "khanacademy.org", "year7"))
    lines = d.diff(before, after)
    assert lines[:2] == ["--- before", "+++ after"]
    assert "+    - khanacademy.org" in lines
    assert "+    block_mode: nxdomain" in lines
    hunks = [line for line in lines if line.startswith("@@")]
    assert hunks and hunks[0].endswith(" groups.year7.allow")
    assert not any(line.endswith("\n") for line in lines)

    removed = d.diff(before, d.render(d.set_group_rules(doc, "year7", [{"during": "lunch", "allow": []}])))
    assert next(line for line in removed if line.startswith("@@")).endswith("groups.year7.rules.allow")
    assert d.diff(before, before) == []


def test_a_group_is_removed_from_a_policy_that_leaves_the_default_group_implied():
    doc = {"groups": {"year9": {"networks": ["10.0.9.0/24"]}}}
    assert d.remove_group(doc, "year9") == {"groups": {}}  # was a KeyError('default_group')
    with pytest.raises(ValueError, match="is the default group"):
        d.remove_group(doc, "default")
