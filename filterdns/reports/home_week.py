"""A child's week at home (issue 19): what their take-home device had blocked at home, by
category and by site. The family page and the weekly digest show the same facts, and only
to that child's linked parents: it is never part of any aggregate or class report."""

from __future__ import annotations

from dataclasses import dataclass

from filterdns.store import Store


@dataclass(frozen=True, slots=True)
class HomeWeek:
    """A child's blocked lookups at home in a week: (category, count), "" for a parent's
    bedtime or pause, and the most blocked sites (name, count)."""

    categories: tuple[tuple[str, int], ...]
    names: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ChildAtHome:
    """A child (by the name their parents know) and their week at home, for the digest."""

    name: str
    week: HomeWeek


async def load_home_week(store: Store, pupil: str, since: float, until: float) -> HomeWeek:
    """What ``pupil``'s device had blocked at home in [since, until)."""
    categories, names = await store.count_home_blocked(pupil, since, until)
    return HomeWeek(tuple(categories), tuple(names))
