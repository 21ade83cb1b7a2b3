"""The suffix index: parent-domain matching, category bits, exceptions, explain, and agreement
with a plain reference implementation."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterdns.policy.domainindex import DomainIndex, DomainIndexBuilder

ADULT, GAMES, SOCIAL = 0, 1, 2


def _index(*entries: tuple[str, int] | tuple[str, int, bool]) -> DomainIndex:
    return DomainIndex.build((e[0], e[1], e[2] if len(e) == 3 else False) for e in entries)


def test_matches_the_name_and_its_subdomains_only() -> None:
    index = _index(("example.com", ADULT))
    assert index.match("example.com") == 1
    assert index.match("www.example.com") == 1
    assert index.match("a.b.c.example.com") == 1
    assert index.match("notexample.com") == 0  # a suffix, but not at a label boundary
    assert index.match("example.com.evil.net") == 0
    assert index.match("com") == 0
    assert index.match("") == 0


def test_categories_are_bits() -> None:
    index = _index(("example.com", ADULT), ("games.example.com", GAMES), ("example.com", SOCIAL), ("other.org", 63))
    assert index.match("example.com") == 0b101
    assert index.match("x.games.example.com") == 0b111
    assert index.match("other.org") == 1 << 63
    assert len(index) == 3


def test_exception_unlists_a_subtree_for_its_category_only() -> None:
    index = _index(
        ("example.com", ADULT),
        ("example.com", GAMES),
        ("safe.example.com", ADULT, True),
        ("bad.safe.example.com", ADULT),  # more specific again: listed
    )
    assert index.match("www.example.com") == 0b11
    assert index.match("safe.example.com") == 0b10
    assert index.match("x.safe.example.com") == 0b10
    assert index.match("bad.safe.example.com") == 0b11
    assert index.match("x.bad.safe.example.com") == 0b11


def test_exception_wins_over_a_listing_of_the_same_name() -> None:
    index = _index(("example.com", ADULT), ("example.com", ADULT, True), ("example.com", GAMES))
    assert index.match("www.example.com") == 1 << GAMES


def test_exception_alone_blocks_nothing() -> None:
    index = _index(("example.com", ADULT, True))
    assert index.match("example.com") == 0
    assert len(index) == 1


def test_explain_lists_the_deciding_suffixes_most_specific_first() -> None:
    index = _index(
        ("example.com", ADULT),
        ("example.com", GAMES),
        ("cdn.example.com", GAMES),
        ("cdn.example.com", SOCIAL),
        ("safe.cdn.example.com", ADULT, True),
    )
    name = "a.safe.cdn.example.com"
    explanation = index.explain(name)
    # GAMES is decided by cdn.example.com (the most specific listing); ADULT by the exception.
    assert explanation == [("cdn.example.com", (1 << GAMES) | (1 << SOCIAL))]
    assert index.explain("www.example.com") == [("example.com", 0b11)]
    assert index.explain("x.cdn.example.com") == [("cdn.example.com", 0b110), ("example.com", 0b1)]
    assert index.explain("unlisted.org") == []


def test_top_level_domains_can_be_listed() -> None:
    index = _index(("zip", ADULT), ("example.com", GAMES))
    assert index.match("anything.zip") == 1
    assert index.match("zip") == 1
    assert index.match("www.example.com") == 2


def test_empty_index() -> None:
    index = DomainIndex.empty()
    assert len(index) == 0
    assert index.match("example.com") == 0
    assert index.explain("example.com") == []
    assert len(DomainIndex.build([])) == 0


def test_crc_collisions_are_told_apart() -> None:
    # These two names have the same CRC-32: the stored name must decide.
    index = _index(("cqzjyehe.test", ADULT))
    assert index.match("cqzjyehe.test") == 1
    assert index.match("sqrafazj.test") == 0
    both = _index(("cqzjyehe.test", ADULT), ("sqrafazj.test", GAMES))
    assert both.match("cqzjyehe.test") == 1
    assert both.match("www.sqrafazj.test") == 2


def test_builder_merges_lists_and_duplicates() -> None:
    builder = DomainIndexBuilder()
    builder.add(["a.com", "b.com", "a.com"], ADULT)
    builder.add(["b.com", "c.com"], GAMES)
    builder.add(["a.com"], GAMES)
    builder.add(["x.b.com"], ADULT, exception=True)
    index = builder.build()
    assert len(index) == 4
    assert (index.match("a.com"), index.match("b.com"), index.match("c.com")) == (0b11, 0b11, 0b10)
    assert index.match("x.b.com") == 0b10


def test_rejects_unnormalised_names_and_bits_out_of_range() -> None:
    with pytest.raises(ValueError):
        _index(("münchen.de", ADULT))
    with pytest.raises(ValueError):
        _index(("example.com", 64))
    assert _index(("example.com", ADULT)).match("münchen.example.com") == 1


def test_pickles_for_building_in_another_process() -> None:
    index = _index(("example.com", ADULT), ("safe.example.com", ADULT, True), ("games.net", 40))
    copy = pickle.loads(pickle.dumps(index))
    for name in ("www.example.com", "safe.example.com", "games.net", "other.org"):
        assert copy.match(name) == index.match(name)
    assert len(copy) == len(index)


# -- against a reference implementation ------------------------------------------------------

# A tiny alphabet makes parents, siblings and repeated names common.
_names = st.lists(st.sampled_from(["a", "b", "ab", "c"]), min_size=1, max_size=4).map(".".join)
_entries = st.lists(st.tuples(_names, st.integers(0, 3), st.booleans()), max_size=25)


def _reference_match(entries: list[tuple[str, int, bool]], name: str) -> int:
    """Per category, the most specific listed suffix decides; an exception beats a listing
    of the same name."""
    labels = name.split(".")
    result = 0
    for bit in range(4):
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            kinds = {exception for domain, b, exception in entries if domain == suffix and b == bit}
            if kinds:
                if kinds == {False}:
                    result |= 1 << bit
                break
    return result


@settings(max_examples=300, deadline=None)
@given(_entries, st.lists(_names, min_size=1, max_size=10))
def test_agrees_with_reference(entries: list[tuple[str, int, bool]], queries: list[str]) -> None:
    index = DomainIndex.build(entries)
    assert len(index) == len({domain for domain, _, _ in entries})
    for name in queries + [f"x.{domain}" for domain, _, _ in entries]:
        expected = _reference_match(entries, name)
        assert index.match(name) == expected, name
        explained = 0
        for suffix, mask in index.explain(name):
            assert name == suffix or name.endswith("." + suffix)
            assert mask and not explained & mask
            explained |= mask
        assert explained == expected
