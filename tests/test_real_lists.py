"""The parsers and the index on real third-party lists (/work/shared/data, see its README).

* HaGeZi publishes the same list in five syntaxes; with subdomain matching they must block
  exactly the same names.
* Every UT1, Block List Project and Sinfonietta list loads with entry counts matching the
  README's line counts and (almost) no bad lines. ``pytest -s`` prints the counts.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from filterdns.config.model import CategoryConfig, SourceConfig
from filterdns.policy.categories import CategorySet, build_category_set
from filterdns.policy.domainindex import DomainIndexBuilder
from filterdns.policy.listformats import read_list_file

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LISTS = DATA / "blocklists"
pytestmark = pytest.mark.skipif(not LISTS.is_dir(), reason=f"{LISTS} not present")

HAGEZI_VARIANTS = {"adblock": 714, "wildcard": 714, "dnsmasq": 714, "domains": 1205, "hosts": 1205}


def test_hagezi_variants_block_the_same_names() -> None:
    indexes = {}
    names: set[str] = set()
    for fmt, expected in HAGEZI_VARIANTS.items():
        path = LISTS / "hagezi" / f"doh-vpn-proxy-bypass.{fmt}.txt"
        parsed = read_list_file(path, fmt)
        assert (len(parsed.domains), parsed.bad_lines, parsed.unsupported_lines) == (expected, 0, 0), fmt
        assert sorted(read_list_file(path).domains) == sorted(parsed.domains), f"auto differs for {fmt}"
        builder = DomainIndexBuilder()
        builder.add(parsed.domains, 0)
        indexes[fmt] = builder.build()
        names.update(parsed.domains)

    probes = set(names)
    for name in names:
        probes.add("x." + name)
        labels = name.split(".")
        probes.update(".".join(labels[i:]) for i in range(1, len(labels)))
    blocked = {fmt: {name for name in probes if index.match(name)} for fmt, index in indexes.items()}
    reference = blocked["domains"]
    assert len(reference) > 2 * len(names)  # every listed name and its "x." subdomain, at least
    for fmt, names_blocked in blocked.items():
        assert names_blocked == reference, f"{fmt}: {sorted(names_blocked ^ reference)[:10]}"
    print(f"\nhagezi: {len(probes)} names probed, {len(reference)} blocked identically by all five formats")


def _readme_line_counts() -> dict[str, int]:
    """``blocklists/...`` file -> line count, from the README's tables."""
    text = (DATA / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(blocklists/[^`]+)` \| [^|]* \| ([\d,]+) \|", text, re.MULTILINE)
    return {path: int(count.replace(",", "")) for path, count in rows}


SOURCES = ("ut1", "blocklistproject", "sinfonietta")


def _list_files() -> list[Path]:
    skip = {"LICENSE", "global_usage.txt"}
    return sorted(p for source in SOURCES for p in (LISTS / source).iterdir() if p.name not in skip)


@pytest.fixture(scope="module")
def loaded() -> tuple[CategorySet, list[Path], float]:
    files = _list_files()
    categories = [
        CategoryConfig(f"{path.parent.name}-{path.name.split('.')[0]}", sources=(SourceConfig(str(path)),))
        for path in files
    ]
    started = time.perf_counter()
    result = build_category_set(categories, LISTS / "no-cache", LISTS)
    return result, files, time.perf_counter() - started


def test_every_list_loads_with_sane_counts(loaded: tuple[CategorySet, list[Path], float]) -> None:
    result, files, seconds = loaded
    lines = _readme_line_counts()
    print(f"\n{'list':<48} {'lines':>8} {'entries':>8} {'unsupp.':>8} {'bad':>5}")
    for path, status in zip(files, result.statuses, strict=True):
        key = str(path.relative_to(DATA))
        assert status.error is None, status
        expected = lines[key]
        print(f"{key:<48} {expected:>8} {status.entries:>8} {status.unsupported_lines:>8} {status.bad_lines:>5}")
        # Every line is an entry, an unsupported entry (UT1's IP addresses), or a comment or
        # blank line in the list's short header.
        accounted = status.entries + status.unsupported_lines
        assert expected - 20 - expected // 50 <= accounted <= expected, key
        assert status.bad_lines <= expected // 1000, (key, status.bad_examples)
    total_entries = sum(status.entries for status in result.statuses)
    print(f"{len(files)} lists, {total_entries} entries, {len(result.index)} distinct domains, {seconds:.2f} s")
    assert len(result.index) > 700_000


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("www.facebook.com", "ut1-social_networks"),
        ("dns.google", "ut1-doh"),
        ("cdn.polyfill.io", "ut1-malware"),
        ("www.bet365.com", "ut1-gambling"),
        ("play.google.com", "ut1-games"),
        ("uvm.edu", "blocklistproject-phishing"),
        ("xhamster.com", "sinfonietta-porn"),
        ("www.tiktok.com", "blocklistproject-tiktok"),
    ],
)
def test_known_entries_are_matched(loaded: tuple[CategorySet, list[Path], float], name: str, category: str) -> None:
    result = loaded[0]
    assert category in result.names_in(result.index.match(name))
    assert any(category in result.names_in(mask) for _, mask in result.index.explain(name))


def test_unlisted_names_are_not_matched(loaded: tuple[CategorySet, list[Path], float]) -> None:
    result = loaded[0]
    for name in ("example.com", "www.wikipedia.org", "school.example.edu"):
        assert result.index.match(name) == 0, result.names_in(result.index.match(name))
