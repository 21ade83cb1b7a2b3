"""Block list parsing: every syntax, the awkward lines real lists contain, and agreement between
the fast whole-text patterns and the per-line parser."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterdns.policy import listformats
from filterdns.names import normalize_domain
from filterdns.policy.listformats import parse_lines, parse_text, read_list_file


def test_plain_domains_with_comments_blank_lines_and_case() -> None:
    lines = ["# header", "", "Example.com", "   ", "ads.example.net # inline", "tracker.org.", "bad..name"]
    parsed = parse_lines(lines)
    assert sorted(parsed.domains) == ["ads.example.net", "example.com", "tracker.org"]
    assert parsed.exceptions == []
    assert parsed.bad_lines == 1
    assert parsed.bad_examples == [(7, "bad..name")]


def test_hosts_format() -> None:
    text = """\
127.0.0.1 localhost
127.0.0.1 localhost.localdomain
::1 localhost ip6-localhost ip6-loopback
fe80::1%lo0 localhost
255.255.255.255 broadcasthost
0.0.0.0 0.0.0.0
0.0.0.0 ads.example.com
127.0.0.1\tTracker.Example.net   # trailing comment
0.0.0.0 one.example.org two.example.org
:: v6.example.org
0.0.0.0 85.17.187.83
0.0.0.0 en
notanip example.com
"""
    parsed = parse_text(text, "hosts")
    assert sorted(parsed.domains) == [
        "ads.example.com",
        "one.example.org",
        "tracker.example.net",
        "two.example.org",
        "v6.example.org",
    ]
    # An IP address or a bare TLD as a name is well-formed but useless to a DNS filter.
    assert parsed.unsupported_lines == 3
    assert parsed.bad_examples == [(13, "notanip example.com")]


def test_adblock_format() -> None:
    text = """\
[Adblock Plus 2.0]
! Title: test
||ads.example.com^
||Tracker.Example.net^$important
@@||good.ads.example.com^
||third.example.org^$third-party
example.com##.banner
##.generic-ad
||example.org/ads/*
/banner[0-9]+/
|https://example.com/x
||1.2.3.4^
||bad..name^
"""
    parsed = parse_text(text, "adblock")
    assert sorted(parsed.domains) == ["ads.example.com", "tracker.example.net"]
    assert parsed.exceptions == ["good.ads.example.com"]
    assert parsed.unsupported_lines == 6  # $third-party, cosmetic, URL, regex, anchored URL, IP
    assert parsed.bad_examples == [(13, "||bad..name^")]


def test_wildcard_format() -> None:
    parsed = parse_text("# header\n*.example.com\n*.Müller.de\n*.zip\n*example.org\n", "wildcard")
    assert sorted(parsed.domains) == ["example.com", "xn--mller-kva.de", "zip"]
    assert parsed.bad_examples == [(5, "*example.org")]


def test_dnsmasq_format() -> None:
    text = """\
# dnsmasq
address=/ads.example.com/#
address=/tracker.example.net/0.0.0.0
local=/local-style.example.org/
server=/server-style.example.org/
address=/one.example.org/two.example.org/::
address=/#/0.0.0.0
address=/missing-slash.example.com
"""
    parsed = parse_text(text, "dnsmasq")
    assert sorted(parsed.domains) == [
        "ads.example.com",
        "local-style.example.org",
        "one.example.org",
        "server-style.example.org",
        "tracker.example.net",
        "two.example.org",
    ]
    assert parsed.unsupported_lines == 1
    assert parsed.bad_examples == [(8, "address=/missing-slash.example.com")]


def test_auto_detects_each_line_in_a_mixed_file() -> None:
    text = """\
# every syntax in one file
plain.example.com
0.0.0.0 hosts.example.com
||adblock.example.com^
@@||allowed.adblock.example.com^
*.wildcard.example.com
local=/dnsmasq.example.com/
Ünïcode.example
"""
    parsed = parse_text(text)
    assert sorted(parsed.domains) == [
        "adblock.example.com",
        "dnsmasq.example.com",
        "hosts.example.com",
        "plain.example.com",
        "wildcard.example.com",
        "xn--ncode-cta3g.example",
    ]
    assert parsed.exceptions == ["allowed.adblock.example.com"]
    assert parsed.bad_lines == parsed.unsupported_lines == 0


@pytest.mark.parametrize(
    ("fmt", "foreign_line"),
    [
        ("domains", "0.0.0.0 example.com"),
        ("hosts", "example.com"),
        ("adblock", "example.com"),
        ("wildcard", "||example.com^"),
        ("dnsmasq", "*.example.com"),
    ],
)
def test_explicit_format_rejects_other_syntaxes(fmt: str, foreign_line: str) -> None:
    parsed = parse_lines([foreign_line], fmt)
    assert parsed.domains == []
    assert parsed.bad_examples == [(1, foreign_line)]


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown list format"):
        parse_lines(["example.com"], "csv")


def test_windows_line_endings_bom_and_tabs() -> None:
    parsed = parse_text("\ufeffone.example.com\r\n\t0.0.0.0\ttwo.example.com\t\r\n\r\n")
    assert sorted(parsed.domains) == ["one.example.com", "two.example.com"]
    assert parsed.bad_lines == 0


def test_bad_examples_keep_the_first_five_with_line_numbers() -> None:
    lines = ["ok.example.com", "bad one"] * 8
    parsed = parse_lines(lines, "domains")
    assert parsed.bad_lines == 8
    assert parsed.bad_examples == [(n, "bad one") for n in (2, 4, 6, 8, 10)]
    assert len(parsed.domains) == 8


def test_line_numbers_survive_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listformats, "_CHUNK_CHARS", 40)
    lines = [f"site{i}.example.com" for i in range(50)]
    lines[37] = "not a domain"
    lines[44] = "x" * 64 + ".example.com"
    parsed = parse_lines(lines)
    assert parsed.bad_examples == [(38, "not a domain"), (45, "x" * 64 + ".example.com")]
    assert len(parsed.domains) == 48


def test_names_over_253_characters_are_bad_even_when_well_formed_otherwise() -> None:
    long_name = ".".join(["a" * 63] * 4)  # 255 characters of valid labels
    parsed = parse_lines(["ok.example.com", long_name, f"0.0.0.0 {long_name}"])
    assert parsed.domains == ["ok.example.com"]
    assert [lineno for lineno, _ in parsed.bad_examples] == [2, 3]


def test_read_list_file_plain_gzip_and_misnamed_gzip(tmp_path: Path) -> None:
    content = "# list\n0.0.0.0 a.example.com\nb.example.com\n"
    plain = tmp_path / "list.txt"
    plain.write_text(content)
    packed = tmp_path / "list.txt.gz"
    packed.write_bytes(gzip.compress(content.encode()))
    misnamed = tmp_path / "download"
    misnamed.write_bytes(gzip.compress(content.encode()))
    for path in (plain, packed, misnamed):
        assert sorted(read_list_file(path).domains) == ["a.example.com", "b.example.com"]


def test_undecodable_bytes_make_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"good.example.com\nm\xfcnchen.de\n")
    parsed = read_list_file(path)
    assert parsed.domains == ["good.example.com"]
    assert parsed.bad_lines == 1


# -- the fast patterns must agree with the per-line parser ---------------------------------

_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_domain = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_label, min_size=1, max_size=4),
    st.sampled_from(["com", "org", "de", "x1"]),
)
_decorated = st.tuples(
    _domain,
    st.sampled_from(
        ["{}", "0.0.0.0 {}", "127.0.0.1\t{}", "||{}^", "@@||{}^", "*.{}", "address=/{}/#", "local=/{}/", "{}."]
    ),
    st.sampled_from(["", " ", "\t", "\r"]),
    st.booleans(),
).map(lambda t: (t[1].format(t[0].upper() if t[3] else t[0]) + t[2]))
_odd_lines = st.sampled_from(
    ["# comment", "! comment", "", "   ", "1.2.3.4", "localhost", "0.0.0.0 localhost", "bad line here"]
    + ["||x.com/ads", "münchen.de", "a..b", "example.com##.ad", "0.0.0.0 a.com b..c"]
)


def _reference(lines: list[str], fmt: str) -> tuple[list[str], list[str], int, int]:
    """What the per-line parser alone makes of ``lines``."""
    domains: list[str] = []
    exceptions: list[str] = []
    bad = unsupported = 0
    for line in lines:
        line = line.strip().lower()
        if not line:
            continue
        names, exception, problem = listformats._parse_line(line, fmt)
        (exceptions if exception else domains).extend(names)
        bad += problem == "bad"
        unsupported += problem == "unsupported"
    return sorted(domains), sorted(exceptions), bad, unsupported


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_decorated, _odd_lines), max_size=30), st.sampled_from(listformats.FORMATS))
def test_fast_path_agrees_with_the_line_parser(lines: list[str], fmt: str) -> None:
    parsed = parse_lines(lines, fmt)
    result = (sorted(parsed.domains), sorted(parsed.exceptions), parsed.bad_lines, parsed.unsupported_lines)
    assert result == _reference(lines, fmt)


@settings(max_examples=100, deadline=None)
@given(_domain)
def test_every_syntax_yields_the_same_name(domain: str) -> None:
    expected = normalize_domain(domain)
    if expected is None:
        return  # e.g. a label over 63 characters cannot occur here, but an all-digit TLD can
    for fmt, line in [
        ("domains", domain),
        ("hosts", f"0.0.0.0 {domain}"),
        ("adblock", f"||{domain}^"),
        ("wildcard", f"*.{domain}"),
        ("dnsmasq", f"address=/{domain}/0.0.0.0"),
    ]:
        for chosen in (fmt, "auto"):
            assert parse_lines([line], chosen).domains == [expected], (chosen, line)
