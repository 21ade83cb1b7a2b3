"""What a group's schedule does to a category, in words for staff.

The engine's verdict says why a name is blocked at one instant; a category the group
blocks always but a lunch rule allows is blocked "at all times" only as far as that
instant knows. The Check page adds the rest of the day from the group's rules ("blocked
now during lessons (until 12:25), allowed during lunch (12:25–13:15), blocked again from
13:15"), so what staff read is true for the day, not only for the minute.

Rules apply in config order, a later one over an earlier one, as in
``filterdns.policy.groupstate``; overrides and locked categories are the verdict's own
business and are not re-told here. Times are each schedule's own wall clock, which is the
school's unless a schedule names another zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from filterdns.config.model import GroupConfig
from filterdns.policy.schedule import Schedule

MAX_STRETCHES = 48  # a day's changes; more means windows of minutes, told only in part


@dataclass(frozen=True, slots=True)
class Stretch:
    """A stretch of the day in which the category is blocked or not, and the schedule
    whose rule decides it ("" when no rule does: the group's own setting)."""

    start: datetime
    end: datetime
    blocked: bool
    schedule: str


def category_state(group: GroupConfig, category: str, schedules: Mapping[str, Schedule], when: datetime) -> tuple[bool, str]:
    """Whether ``category`` is blocked for ``group`` by its own setting and rules at
    ``when``, and the schedule of the rule that decides it ("" for the group's setting)."""
    blocked, by = category in group.block, ""
    for rule in group.rules:
        schedule = schedules.get(rule.schedule)
        if schedule is None or schedule.active_window(when) is None:
            continue
        if category in rule.block:
            blocked, by = True, rule.schedule
        if category in rule.allow:
            blocked, by = False, rule.schedule
    return blocked, by


def rest_of_day(
    group: GroupConfig, category: str, schedules: Mapping[str, Schedule], at: datetime, zone: ZoneInfo
) -> list[Stretch]:
    """The stretches of ``category``'s state for ``group`` from ``at`` to the end of that
    day in ``zone``."""
    local = at.astimezone(zone)
    day_end = datetime.combine(local.date() + timedelta(days=1), time(), zone)
    used = [schedules[r.schedule] for r in group.rules if r.schedule in schedules and category in (*r.block, *r.allow)]
    stretches: list[Stretch] = []
    now = local
    while now < day_end and len(stretches) < MAX_STRETCHES:
        changes = [c for c in (s.next_change(now) for s in used) if c is not None]
        end = min([c.astimezone(zone) for c in changes if c.timestamp() < day_end.timestamp()], default=day_end,
                  key=lambda c: c.timestamp())  # fmt: skip
        blocked, by = category_state(group, category, schedules, now)
        if stretches and (stretches[-1].blocked, stretches[-1].schedule) == (blocked, by):
            stretches[-1] = Stretch(stretches[-1].start, end, blocked, by)
        else:
            stretches.append(Stretch(now, end, blocked, by))
        now = end
    return stretches


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def day_sentence(category: str, group: str, stretches: list[Stretch]) -> str:
    """The day in one sentence: "social is blocked for year7 now (until 12:25), allowed
    during lunch (12:25–13:15), blocked again from 13:15"."""
    first, *rest = stretches
    words = [f"{category} is {_state(first)} for {group} now{_during(first)}"]
    day_end = stretches[-1].end
    words[0] += f" (until {_clock(first.end)})" if rest else " for the rest of the day"
    seen = {first.blocked}
    for stretch in rest:
        state = _state(stretch) + (" again" if stretch.blocked in seen and not stretch.schedule else "")
        seen.add(stretch.blocked)
        if stretch.end == day_end and not stretch.schedule:
            words.append(f"{state} from {_clock(stretch.start)}")
        else:
            words.append(f"{state}{_during(stretch)} ({_clock(stretch.start)}–{_clock(stretch.end)})")
    return ", ".join(words)


def _state(stretch: Stretch) -> str:
    return "blocked" if stretch.blocked else "allowed"


def _during(stretch: Stretch) -> str:
    return f" during {stretch.schedule}" if stretch.schedule else ""


def lifted_by(group: GroupConfig, category: str) -> list[str]:
    """The schedules in which a rule of ``group`` allows ``category``."""
    return list(dict.fromkeys(r.schedule for r in group.rules if category in r.allow))
