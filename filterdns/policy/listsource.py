"""Which source of a category lists a name: for staff looking at one false positive (a review
request, "check a domain", a fix), never for the query path.

The index merges every source of a category into one mask per name, so it cannot say which
list a name came from; keeping that for a million names would cost tens of megabytes. Staff
ask about one name at a time, so the source files are searched instead: one bytes regex over
each file of the category (a few milliseconds per megabyte; a gzip copy is decompressed
first), for the listed name written in any list syntax (``name``, ``0.0.0.0 name``,
``||name^``, ``*.name``, ``local=/name/``, ``.name``).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from pathlib import Path

from filterdns.policy.categories import INLINE_LOCATION, SourceStatus
from filterdns.policy.sources import cached_copy_path

# Before the name: a line start (with UT1's optional dot), a space, adblock's "||", a
# wildcard's "*." or dnsmasq's "/". After it: a space, "^", "/", "#" or the line end.
_BEFORE = rb"(?:^\.?|[ \t]|\|\||\*\.|/)"
_AFTER = rb"(?=[ \t\r^/#$]|$)"


def sources_listing(name: str, statuses: Sequence[SourceStatus], cache_dir: Path) -> list[str]:
    """Labels of the sources among ``statuses`` (one category's) whose file lists ``name``
    itself, in their order. Domains typed into the policy are not searched: the console
    shows them with the category."""
    pattern = re.compile(_BEFORE + re.escape(name.encode("ascii")) + _AFTER, re.MULTILINE | re.IGNORECASE)
    found = []
    for status in statuses:
        if status.error is not None or status.location == INLINE_LOCATION:
            continue
        path = cached_copy_path(cache_dir, status.location) if status.location.startswith(("http://", "https://")) else Path(status.location)
        try:
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile):
            continue  # changed since the build: the page says what it can
        if pattern.search(data):
            found.append(status.label)
    return found


def explanation_sources(
    listings: Sequence[tuple[str, Sequence[str]]], statuses: Sequence[SourceStatus], cache_dir: Path
) -> dict[str, list[str]]:
    """Category -> labels of its sources listing the name, for an explanation's ``listings``
    ((listed suffix, categories) pairs)."""
    found: dict[str, list[str]] = {}
    for suffix, categories in listings:
        for category in categories:
            labels = sources_listing(suffix, [s for s in statuses if s.category == category], cache_dir)
            known = found.setdefault(category, [])
            known.extend(label for label in labels if label not in known)
    return found
