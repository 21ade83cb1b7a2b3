"""List health, measured at every list build: what each source would wrongly block, and how
the sources and categories overlap.

Broad public lists always contain a few names a school runs on (UT1 lists teams.microsoft.com
as chat, the Block List Project lists nasa.gov as torrent). The engine keeps essential names
reachable whatever the lists say; this module says, per source, which essential names it
would have blocked, so that a source listing many of them can be flagged and replaced.

Costs, on top of the build's ~1.5 s per million names: the essential check is one C-level set
intersection per source (a few hundred suffixes against the source's names, ~30 ms per
million), and the overlap counts are one pass over the index's masks (~60 ms per million).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations


class EssentialProbe:
    """Which essential names a list blocks: an essential name is blocked by a listing of the
    name itself or of a parent domain (a listing below it blocks only that host)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._covers: dict[str, list[str]] = {}
        for name in dict.fromkeys(names):
            labels = name.split(".")
            for i in range(len(labels)):
                self._covers.setdefault(".".join(labels[i:]), []).append(name)
        self._suffixes = frozenset(self._covers)
        self.total = len({name for names in self._covers.values() for name in names})

    def blocked_by(self, domains: Iterable[str], exceptions: Iterable[str] = ()) -> tuple[str, ...]:
        """The essential names ``domains`` would block, sorted; an essential name a list
        excepts (adblock ``@@``) itself or through a parent is not counted."""
        if not self._suffixes:
            return ()
        listed = self._suffixes.intersection(domains)
        if not listed:
            return ()
        excepted = {name for suffix in self._suffixes.intersection(exceptions) for name in self._covers[suffix]}
        return tuple(sorted({name for suffix in listed for name in self._covers[suffix]} - excepted))


@dataclass(slots=True)
class ListHealth:
    """Counts across the sources of one build, for the Categories page and ``check-config``."""

    essential_total: int = 0
    # Category -> distinct names it lists, and entries its sources repeat (the sum of the
    # sources' entries minus the distinct names: a name listed by three sources counts twice).
    distinct: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    # (category, category, names listed by both), most shared first.
    overlaps: list[tuple[str, str, int]] = field(default_factory=list)


def category_health(
    names: Sequence[str], mask_counts: Counter[int], entries: dict[str, int], essential_total: int
) -> ListHealth:
    """Distinct names, duplicates and pairwise overlaps from the index's block-mask counts
    (``mask_counts[m]`` names carry exactly the categories of mask ``m``); ``entries`` is each
    category's entry count summed over its sources."""
    distinct = dict.fromkeys(names, 0)
    shared: Counter[tuple[str, str]] = Counter()
    for mask, count in mask_counts.items():
        categories = [name for bit, name in enumerate(names) if mask >> bit & 1]
        for category in categories:
            distinct[category] += count
        for pair in combinations(categories, 2):
            shared[pair] += count
    return ListHealth(
        essential_total=essential_total,
        distinct=distinct,
        duplicates={name: max(0, entries.get(name, 0) - distinct[name]) for name in names},
        overlaps=[(a, b, count) for (a, b), count in shared.most_common()],
    )


def over_share(blocked: int, total: int, share: float) -> bool:
    """True when a source blocking ``blocked`` of ``total`` essential names exceeds ``share``
    (``lists.essential_alert_share``): such a source is flagged in red on the dashboard."""
    return total > 0 and blocked / total > share


def essential_note(blocked: Sequence[str], total: int) -> str:
    """"would block 4 of 227 essential names", for the console and ``check-config``."""
    return f"would block {len(blocked)} of {total} essential names"
