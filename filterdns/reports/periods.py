"""When in the school day something happened: before school, lessons, break, after school,
late night, or a day without school, from a class group's timetable.

The definitions, in the school's time zone (``config.policy.timezone``):

* **lessons**: inside a window of one of the group's *lesson schedules* (below). Lessons
  win over every other period, even late at night.
* **late night**: 22:00 to 06:00 on any day.
* On a **school day**, a day on which lesson time falls:
  * **before school**: from 06:00 until the day's first lesson starts;
  * **break**: between the day's first and last lessons, outside lesson windows
    (morning break, lunch, gaps between lessons);
  * **after school**: from the day's last lesson's end until 22:00.
* **no school**: 06:00 to 22:00 on any other day (weekends, holidays: a schedule's dated
  exception without windows makes its days such days).

The group's lesson schedules are the schedules named by its rules that *block*
categories ("social networks are blocked during lessons"); a rule that only allows
(games "during lunch") marks free time, not lessons. A group without blocking rules uses
the schedule called ``lessons``, if the configuration has one. A group with neither has no
timetable: its hours are only "late night" or "no school".

The store counts queries per UTC hour, so the report classifies whole hours: an hour
belongs to the period in force for most of it (sampled every five minutes, the earliest
period winning a tie). With lessons at 08:45-10:45, the hour 08:00-09:00 is "before
school" and 10:00-11:00 "lessons".
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from filterdns.config.model import GroupConfig, ScheduleConfig
from filterdns.policy.schedule import Schedule, wall_to_timestamp

MORNING = time(6, 0)  # late night ends
NIGHT = time(22, 0)  # late night starts
LESSONS_SCHEDULE = "lessons"  # the fallback lesson schedule's name
HOUR = 3600
_SAMPLE_STEP = 300  # five minutes
_SAMPLES = tuple(range(_SAMPLE_STEP // 2, HOUR, _SAMPLE_STEP))
_DAY_CACHE_SIZE = 64


class Period(enum.StrEnum):
    """A part of the school day, in the order reports list them."""

    BEFORE_SCHOOL = "before-school"
    LESSONS = "lessons"
    BREAK = "break"
    AFTER_SCHOOL = "after-school"
    LATE_NIGHT = "late-night"
    NO_SCHOOL = "no-school"


@dataclass(frozen=True, slots=True)
class _Day:
    """One local calendar day compiled to timestamps."""

    lessons: tuple[tuple[float, float], ...]  # merged lesson intervals within the day
    morning: float
    night: float


def lesson_schedules(group: GroupConfig, schedules: Sequence[ScheduleConfig]) -> tuple[ScheduleConfig, ...]:
    """The schedules whose windows are lessons for ``group`` (see the module docstring)."""
    by_name = {s.name: s for s in schedules}
    names = list(dict.fromkeys(rule.schedule for rule in group.rules if rule.block))
    if not names and LESSONS_SCHEDULE in by_name:
        names = [LESSONS_SCHEDULE]
    return tuple(by_name[name] for name in names if name in by_name)


class Timetable:
    """Answers "which period is this instant / this hour in?" for one group."""

    def __init__(self, lessons: Sequence[ScheduleConfig], zone: ZoneInfo):
        self.zone = zone
        self._schedules = tuple(Schedule(s) for s in lessons)
        self._days: dict[date, _Day] = {}

    @classmethod
    def for_group(cls, group: GroupConfig, schedules: Sequence[ScheduleConfig], zone: ZoneInfo) -> Timetable:
        return cls(lesson_schedules(group, schedules), zone)

    @property
    def has_lessons(self) -> bool:
        """Whether the group has a timetable at all (else only late night / no school)."""
        return bool(self._schedules)

    def period_at(self, stamp: float) -> Period:
        """The period at the POSIX time ``stamp``."""
        day = self._day(datetime.fromtimestamp(stamp, self.zone).date())
        if any(start <= stamp < end for start, end in day.lessons):
            return Period.LESSONS
        if stamp < day.morning or stamp >= day.night:
            return Period.LATE_NIGHT
        if not day.lessons:
            return Period.NO_SCHOOL
        if stamp < day.lessons[0][0]:
            return Period.BEFORE_SCHOOL
        if stamp >= day.lessons[-1][1]:
            return Period.AFTER_SCHOOL
        return Period.BREAK

    def hour_period(self, hour_start: float) -> Period:
        """The period in force for most of the hour starting at ``hour_start``."""
        votes = Counter(self.period_at(hour_start + offset) for offset in _SAMPLES)
        return votes.most_common(1)[0][0]

    def _day(self, day: date) -> _Day:
        compiled = self._days.get(day)
        if compiled is None:
            start = wall_to_timestamp(datetime.combine(day, time()), self.zone)
            end = wall_to_timestamp(datetime.combine(day + timedelta(days=1), time()), self.zone)
            compiled = _Day(
                self._lesson_intervals(start, end),
                wall_to_timestamp(datetime.combine(day, MORNING), self.zone),
                wall_to_timestamp(datetime.combine(day, NIGHT), self.zone),
            )
            if len(self._days) >= _DAY_CACHE_SIZE:
                self._days.clear()
            self._days[day] = compiled
        return compiled

    def _lesson_intervals(self, start: float, end: float) -> tuple[tuple[float, float], ...]:
        """Lesson time within ``[start, end)``, merged across schedules, by walking the
        schedules' changes (their public API, so exceptions and DST rules stay theirs)."""
        intervals: list[tuple[float, float]] = []
        at = start
        while at < end:
            when = datetime.fromtimestamp(at, UTC)
            active = any(s.active_window(when) is not None for s in self._schedules)
            changes = [c.timestamp() for s in self._schedules if (c := s.next_change(when)) is not None]
            following = min([end, *changes])
            if active:
                if intervals and intervals[-1][1] == at:
                    intervals[-1] = (intervals[-1][0], following)
                else:
                    intervals.append((at, following))
            at = following
        return tuple(intervals)
