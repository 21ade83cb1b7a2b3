"""Public suffixes (``com``, ``co.uk``, ``github.io``): names under which anyone can register.

An allow for a public suffix allows every site registered below it, so whatever a teacher or
a pupil's review request can ask for must be a name below one. The Public Suffix List comes
from the ``publicsuffixlist`` package, which ships the list offline (no download at start)
with both its ICANN and private sections, so ``github.io`` and ``blogspot.com`` count too.
It sits at the top of the package, like ``names``: the config loader (essential entries) and
the policy engine (what an override may lift) both ask it.
"""

from __future__ import annotations

from functools import cache

from publicsuffixlist import PublicSuffixList


@cache
def _list() -> PublicSuffixList:
    # About 30 ms to parse: once per process, on first use rather than at import.
    return PublicSuffixList()


def is_public_suffix(name: str) -> bool:
    """True for ``name`` (lower case, ASCII, no trailing dot) that is a public suffix itself,
    including any single label the list does not know (its default rule is ``*``)."""
    return _list().is_public(name)
