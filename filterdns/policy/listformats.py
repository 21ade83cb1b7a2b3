"""Parsing third-party block lists into normalised domain names.

Supported syntaxes, one rule per line:

* ``domains``  – ``example.com``
* ``hosts``    – ``0.0.0.0 example.com [more names]`` (any IP address; localhost-type names skipped)
* ``adblock``  – ``||example.com^`` blocks, ``@@||example.com^`` is an exception; ``!`` comments;
  cosmetic, URL and regex rules cannot be expressed in DNS and are counted as *unsupported*
* ``wildcard`` – ``*.example.com``
* ``dnsmasq``  – ``address=/example.com/…``, ``local=/example.com/``, ``server=/example.com/…``
* ``urls``     – licensed URL lists (IWF, CTIRU): ``example.com``, ``example.com/`` or
  ``https://example.com/`` block the site; ``example.com/some/page`` names one page, which DNS
  cannot block without blocking the whole site, so it is counted in ``url_entries`` instead.
  Never detected by ``auto``: a URL list must be named as one.

Every listed name also covers its subdomains (that is the index's job, not the parser's), so
``*.example.com`` and ``||example.com^`` both yield ``example.com``. ``auto`` recognises each
line by its shape, so mixed files work; an explicit format accepts only its own syntax and counts
other lines as bad, which makes a wrongly configured format visible in the status.

Speed matters: school deployments load lists of a million names at start-up and on every
refresh. Instead of running Python code per line, each syntax has a *fast pattern* that matches
the ordinary well-formed line; ``re.split`` applies it to a large slice of text in C, returning
the captured names and the text in between. Only the lines it leaves behind (comments, IDNs, odd
spacing, IP addresses, bad lines) go through the per-line parser, which implements the full
rules; the fast patterns accept a strict subset of what it accepts, with the same result.
"""

from __future__ import annotations

import gzip
import ipaddress
import re
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Iterable, Iterator

from filterdns.names import MAX_NAME_LENGTH, normalize_domain

MAX_BAD_EXAMPLES = 5
_MAX_EXAMPLE_CHARS = 200
_CHUNK_CHARS = 1 << 18

FORMATS = ("auto", "domains", "hosts", "adblock", "wildcard", "dnsmasq", "urls")

# Names that hosts files map to themselves as boilerplate, not as block entries.
_LOCAL_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
    }
)
_COMMON_HOSTS_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "::0", "0:0:0:0:0:0:0:0"})

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")

_COMMENT_STARTS = ("#", "!", "[")  # "[" is the "[Adblock Plus 2.0]" header
_INLINE_COMMENT = re.compile(r"\s#")
# Characters and sequences only adblock rules contain: anchors, separators, modifiers, paths,
# wildcards, exceptions and cosmetic-rule markers ("##", "#@#", "#?#", "#$#", "#%#").
_ADBLOCK_SHAPE = re.compile(r"[\^$|/*]|@@|#[@?$%]?#")
_DNSMASQ_PREFIXES = ("address=/", "local=/", "server=/")
_ADBLOCK_RULE = re.compile(r"(@@)?\|\|([^\^$|/*]+)\^\|?(?:\$(.+))?")
# Modifiers that do not narrow a rule, so blocking the whole name in DNS is faithful to it.
_HARMLESS_MODIFIERS = frozenset({"important", "all", "document", "doc"})


@dataclass(slots=True)
class ParsedList:
    """What a list contributed. ``domains``/``exceptions`` may contain duplicates and are not in
    file order (the index does not care about either)."""

    domains: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    bad_lines: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)  # (line number, line), first few
    unsupported_lines: int = 0
    url_entries: int = 0  # "urls" format: entries naming a page, not a whole site

    @property
    def mostly_a_list(self) -> bool:
        """At least as many lines parsed (as entries, exceptions or rules a DNS filter
        cannot apply) as did not: the bad lines are then a list's typos, worth quoting, and
        not the content of some other file (a key file, an error page)."""
        return self.bad_lines <= len(self.domains) + len(self.exceptions) + self.unsupported_lines

    def add_bad(self, lineno: int, line: str) -> None:
        self.bad_lines += 1
        if len(self.bad_examples) < MAX_BAD_EXAMPLES:
            self.bad_examples.append((lineno, line[:_MAX_EXAMPLE_CHARS]))


def parse_lines(lines: Iterable[str], fmt: str = "auto") -> ParsedList:
    """Parse list lines (with or without their line endings) in ``fmt``."""
    return parse_text("\n".join(map(str.rstrip, lines)), fmt)


def read_list_file(path: Path, fmt: str = "auto") -> ParsedList:
    """Read and parse a list file; gzip files (``.gz``) are recognised by their magic number,
    so a compressed download works whatever its name. Undecodable bytes make bad lines."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as stream:
        return parse_text(stream.read(), fmt)


def parse_text(text: str, fmt: str = "auto") -> ParsedList:
    """Parse a whole list held in one string (lines separated by ``\\n``)."""
    try:
        fast_patterns = _FAST_PATTERNS[fmt]
    except KeyError:
        raise ValueError(f"unknown list format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    result = ParsedList()
    first_line = 1
    for chunk in _line_chunks(text.removeprefix("\ufeff")):
        lowered = chunk.lower()
        for pattern, exceptions, marker in fast_patterns:
            if marker is None or marker in lowered:
                lowered = _take_fast_lines(pattern, lowered, result.exceptions if exceptions else result.domains)
        _parse_remaining_lines(lowered, first_line, fmt, result)
        first_line += chunk.count("\n")
    return result


def _line_chunks(text: str) -> Iterator[str]:
    """Slices of about ``_CHUNK_CHARS`` ending at line ends. Lists are parsed in a thread beside
    the event loop that answers DNS; one regex call over a whole 20 MB list would hold the GIL
    for half a second, one over a slice for a few milliseconds."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + _CHUNK_CHARS)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _take_fast_lines(pattern: re.Pattern[str], text: str, out: list[str]) -> str:
    """Append the names of the lines ``pattern`` matches to ``out``; return the text with those
    lines emptied (line numbering is kept for the slow path)."""
    parts = pattern.split(text)  # [between, name, between, name, ..., between]
    if len(parts) == 1:
        return text
    names = parts[1::2]
    if max(map(len, names)) > MAX_NAME_LENGTH:
        # Rare: hand over-long names back as their own line, for the slow path to report.
        for i in range(1, len(parts), 2):
            if len(parts[i]) > MAX_NAME_LENGTH:
                parts[i - 1] += parts[i]
                parts[i] = ""
        names = [name for name in parts[1::2] if name]
    out.extend(names)
    return "".join(parts[0::2])


def _parse_remaining_lines(text: str, first_line: int, fmt: str, result: ParsedList) -> None:
    # Most lines were emptied by a fast pattern; compress() skips them in C. (A multiline
    # finditer would too, but was measured to leave small objects behind that pin ~70 MB of
    # the interpreter's memory arenas per million parsed lines.)
    lines = text.split("\n")
    for lineno, line in compress(enumerate(lines, first_line), lines):
        if not (line := line.strip()):
            continue
        names, exception, problem = _parse_line(line, fmt)
        if names:
            (result.exceptions if exception else result.domains).extend(names)
        if problem == "bad":
            result.add_bad(lineno, line)
        elif problem == "unsupported":
            result.unsupported_lines += 1
        elif problem == "url":
            result.url_entries += 1


# -- the per-line parser: complete rules, used for whatever the fast patterns left -----------------

_LineResult = tuple[tuple[str, ...], bool, str | None]  # (names, are exceptions, None | "bad" | "unsupported" | "url")
_SKIP: _LineResult = ((), False, None)
_BAD: _LineResult = ((), False, "bad")
_UNSUPPORTED: _LineResult = ((), False, "unsupported")


def _parse_line(line: str, fmt: str) -> _LineResult:
    """Parse one stripped, lowercased, non-empty line."""
    if line.startswith(_COMMENT_STARTS):
        return _SKIP
    if "#" in line and (comment := _INLINE_COMMENT.search(line)) is not None:
        line = line[: comment.start()].rstrip()
    if fmt == "urls":
        return _parse_url_line(line)
    syntax = _syntax_of(line)
    if fmt != "auto" and syntax != fmt:
        return _BAD
    return _LINE_PARSERS[syntax](line)


def _syntax_of(line: str) -> str:
    """Which syntax a line is written in, judged by its shape alone."""
    if line.startswith(_DNSMASQ_PREFIXES):
        return "dnsmasq"
    if line.startswith("*."):
        return "wildcard"
    if _ADBLOCK_SHAPE.search(line):
        return "adblock"
    if " " in line or "\t" in line:
        return "hosts"
    return "domains"


def _parse_domain_line(line: str) -> _LineResult:
    name, problem = _host_entry(line)
    return ((name,) if name else ()), False, problem


def _parse_hosts_line(line: str) -> _LineResult:
    address, *tokens = line.split()
    if not _is_ip_address(address):
        return _BAD
    names: list[str] = []
    problems: set[str | None] = set()
    for token in tokens:
        name, problem = _host_entry(token)
        if name:
            names.append(name)
        problems.add(problem)
    return tuple(names), False, "bad" if "bad" in problems else "unsupported" if "unsupported" in problems else None


def _host_entry(token: str) -> tuple[str | None, str | None]:
    """A name from a hosts or plain line: ``(name, None)``, ``(None, problem)``, or
    ``(None, None)`` for boilerplate to skip. UT1 and some hosts files list IP addresses (for
    URL filters); a DNS filter cannot use them, but they are not mistakes, so "unsupported".
    So is a bare top-level name: in these formats it would block a whole TLD, which such lists
    never mean (hosts files match exactly; UT1 lists sites)."""
    if token in _LOCAL_NAMES:
        return None, None
    name = normalize_domain(token)
    if name is None:
        return None, _unusable(token)
    if "." not in name:
        return None, (None if name in _LOCAL_NAMES else "unsupported")
    return name, None


def _parse_adblock_line(line: str) -> _LineResult:
    rule = _ADBLOCK_RULE.fullmatch(line)
    if rule is None:
        return _UNSUPPORTED  # cosmetic, URL, regex or partial-name rule
    exception, name, modifiers = rule.groups()
    if modifiers is not None and not set(modifiers.split(",")) <= _HARMLESS_MODIFIERS:
        return _UNSUPPORTED  # e.g. $third-party: narrower than "block the name"
    normalized = normalize_domain(name)
    if normalized is None:
        return (), False, _unusable(name)
    return (normalized,), exception is not None, None


def _parse_wildcard_line(line: str) -> _LineResult:
    name = normalize_domain(line[2:])
    return _BAD if name is None else ((name,), False, None)


def _parse_dnsmasq_line(line: str) -> _LineResult:
    _, _, rest = line.partition("=/")
    *raw_names, _value = rest.split("/")
    if not raw_names:
        return _BAD  # no closing "/"
    if "#" in raw_names:
        return _UNSUPPORTED  # "/#/" means every domain
    names = []
    for raw_name in raw_names:
        name = normalize_domain(raw_name)
        if name is None:
            return _BAD
        names.append(name)
    return tuple(names), False, None


def _parse_url_line(line: str) -> _LineResult:
    """A licensed-list entry: a site (enforced) or one page on a site ("url": reported only)."""
    _, separator, rest = line.partition("://")
    host, slash, path = (rest if separator else line).partition("/")
    name = normalize_domain(host.rpartition("@")[2].partition(":")[0])
    if name is None or "." not in name:
        return _BAD
    if path.strip("/"):
        return (), False, "url"
    return (name,), False, None


def _unusable(text: str) -> str:
    """How to count a rule whose name is not a domain: an IP address is "unsupported"."""
    return "unsupported" if _is_ip_address(text) else "bad"


def _is_ip_address(token: str) -> bool:
    if token in _COMMON_HOSTS_ADDRESSES or _IPV4.fullmatch(token):
        return True  # the common cases, without ipaddress's slow parser
    try:
        ipaddress.ip_address(token.partition("%")[0])  # "fe80::1%lo0" has a zone
    except ValueError:
        return False
    return True


_LINE_PARSERS = {
    "domains": _parse_domain_line,
    "hosts": _parse_hosts_line,
    "adblock": _parse_adblock_line,
    "wildcard": _parse_wildcard_line,
    "dnsmasq": _parse_dnsmasq_line,
}


# -- fast patterns --------------------------------------------------------------------------


def _fast_pattern(prefix: str, suffix: str = "") -> re.Pattern[str]:
    """A whole-line pattern capturing one plain ASCII name between ``prefix`` and ``suffix``.

    Possessive quantifiers (no backtracking) make it about 20% faster; they cannot change the
    outcome because every label is followed by a character labels cannot contain. Total length
    is checked afterwards (cheaper than a lookahead). Names starting with ``localhost.`` are left
    to the slow path, which knows which of them to skip."""
    label = r"[a-z0-9_-]{1,63}+"
    end = rf"{suffix}[ \t\r]*+$"
    return re.compile(
        rf"^[ \t]*+{prefix}(?!localhost\.)((?:{label}\.)++(?![0-9]++{end}){label}){end}", re.MULTILINE
    )


_HOSTS_ADDRESS = r"(?:0\.0\.0\.0|127\.0\.0\.1)[ \t]+"
_FAST_DOMAINS = _fast_pattern("")
_FAST_HOSTS = _fast_pattern(_HOSTS_ADDRESS)
_FAST_HOSTS_OR_DOMAINS = _fast_pattern(f"(?:{_HOSTS_ADDRESS})?+")
_FAST_ADBLOCK = _fast_pattern(r"\|\|", r"\^")
_FAST_ADBLOCK_EXCEPTION = _fast_pattern(r"@@\|\|", r"\^")
_FAST_WILDCARD = _fast_pattern(r"\*\.")
_FAST_DNSMASQ = _fast_pattern(r"(?:address|local|server)=/", r"/[^/\n]*")

# Per format: (pattern, yields exceptions, substring the text must contain for a pass to be worth it).
_FastPass = tuple[re.Pattern[str], bool, str | None]
_ADBLOCK_PASSES: tuple[_FastPass, ...] = (
    (_FAST_ADBLOCK, False, "||"),
    (_FAST_ADBLOCK_EXCEPTION, True, "@@||"),
)
_FAST_PATTERNS: dict[str, tuple[_FastPass, ...]] = {
    "auto": (
        (_FAST_HOSTS_OR_DOMAINS, False, None),
        *_ADBLOCK_PASSES,
        (_FAST_WILDCARD, False, "*."),
        (_FAST_DNSMASQ, False, "=/"),
    ),
    "domains": ((_FAST_DOMAINS, False, None),),
    "hosts": ((_FAST_HOSTS, False, None),),
    "adblock": _ADBLOCK_PASSES,
    "wildcard": ((_FAST_WILDCARD, False, None),),
    "dnsmasq": ((_FAST_DNSMASQ, False, None),),
    "urls": ((_FAST_DOMAINS, False, None),),
}
