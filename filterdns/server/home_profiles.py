"""Parents' settings for their children's take-home devices (issue 19): what the family page
offers, what it may save, and the school's view of every pupil's settings.

Parents only tighten. The form offers the categories the school does not already block at
home, a nightly bedtime and a pause; ``HomeSettings`` has no way to express an allow, so
nothing the school blocks at home can be lifted however the form is tampered with. Every
save is a new revision in the store, audited, and applied at once on this node (the others
follow the store within a second, as with teachers' overrides).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filterdns.policy.home import HomeSettings, home_config
from filterdns.reports.home_week import HomeWeek, load_home_week
from filterdns.store.home import HomeRevision

if TYPE_CHECKING:
    from filterdns.server.control import Control

MAX_PAUSE_MINUTES = 24 * 60
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True, slots=True)
class HomeChild:
    """One child as their parents' page and the school's list show them."""

    pupil: str
    name: str
    group: str
    settings: HomeSettings
    floor: tuple[str, ...]  # what the school blocks at home: shown, never offered
    offered: tuple[str, ...]  # categories a parent may add
    revision: HomeRevision | None


class HomeProfiles:
    """The family page's and the school's access to pupils' home settings."""

    def __init__(self, control: Control):
        self._control = control

    async def children_of(self, parent: str) -> list[HomeChild]:
        """The parent's children that the roster knows (linked by pupil id on import)."""
        profile = await self._control.store.get_parent_profile(parent)
        current = await self._control.store.current_home_settings()
        return [child for pupil in (profile.pupils if profile else ()) if (child := self._child(pupil, current))]

    async def pupils_of(self, parent: str) -> list[tuple[str, str]]:
        """(pupil id, name) of the parent's children with take-home devices: the weekly
        digest's sections at home (``reports.digest_job.ChildrenAtHome``)."""
        return [(child.pupil, child.name) for child in await self.children_of(parent)]

    async def all_children(self) -> list[HomeChild]:
        """Every pupil with home settings, for the school."""
        current = await self._control.store.current_home_settings()
        children = [self._child(pupil, current) for pupil in sorted(current)]
        return [child for child in children if child is not None]

    async def week_at_home(self, child: HomeChild, since: float, until: float) -> HomeWeek:
        """What ``child``'s device had blocked at home in [since, until): for the parents
        ``children_of`` gave ``child`` to, never in any aggregate."""
        return await load_home_week(self._control.store, child.pupil, since, until)

    async def save(
        self, parent: str, pupil: str, *, block: Sequence[str], bedtime: tuple[str, str] | None, pause_minutes: int | None
    ) -> HomeRevision:
        """A new revision of ``pupil``'s home settings by ``parent``; ``pause_minutes`` None
        keeps the pause as it is, 0 ends it. ValueError (nothing saved) for what may not be."""
        child = next((c for c in await self.children_of(parent) if c.pupil == pupil), None)
        if child is None:
            raise ValueError("that child is not linked to your account")
        unknown = [name for name in block if name not in child.offered and name not in child.floor]
        if unknown:
            raise ValueError(f"unknown category {unknown[0]!r}")
        if bedtime is not None and (not all(_CLOCK.match(t) for t in bedtime) or bedtime[0] == bedtime[1]):
            raise ValueError("a bedtime needs a start and an end time such as 21:00 and 07:00")
        if pause_minutes is None:
            paused_until = child.settings.paused_until
        elif 0 <= pause_minutes <= MAX_PAUSE_MINUTES:
            paused_until = time.time() + pause_minutes * 60 if pause_minutes else 0.0
        else:
            raise ValueError(f"a pause lasts at most {MAX_PAUSE_MINUTES // 60} hours")
        extra = tuple(name for name in child.offered if name in block)  # the floor needs no repeating
        settings = HomeSettings(extra, bedtime, paused_until)
        store = self._control.store
        revision = await store.save_home_settings(pupil, settings.to_json(), author=parent)
        await store.audit(parent, "home.settings", pupil, {"revision": revision.id, **settings.to_json()})
        await self._control.sync_home_settings()
        return revision

    def _child(self, pupil: str, current: dict[str, HomeRevision]) -> HomeChild | None:
        entry = next((e for e in self._control.roster().entries if e.pupil_id == pupil), None)
        policy = self._control.config.policy
        group = next((g for g in policy.groups if entry is not None and g.name == entry.group), None)
        if entry is None or group is None:
            return None
        floor = home_config(group, policy).block
        categories = tuple(c.name for c in policy.categories)
        revision = current.get(pupil)
        settings = HomeSettings.from_json(revision.settings) if revision else HomeSettings()
        return HomeChild(
            pupil, entry.display_name or pupil, group.name, settings,
            floor=tuple(c for c in categories if c in floor),
            offered=tuple(c for c in categories if c not in floor),
            revision=revision,
        )  # fmt: skip
