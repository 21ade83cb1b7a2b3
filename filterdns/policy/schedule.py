"""Weekly time windows with dated exceptions, evaluated in the schedule's own time zone.

A school's timetable is written in wall-clock time ("lessons are 08:45-10:15 on Monday"), so
a window is compiled per calendar day into two real instants and every comparison happens on
POSIX timestamps. That keeps three traps out of the callers' way:

* the clock may be in any zone (the server runs in UTC, the school in Europe/London);
* aware datetimes that share a ``tzinfo`` compare *naively* in Python (fold is ignored), so
  comparing them around a DST change gives wrong answers;
* on DST change days some wall times do not exist and others happen twice.

Rules chosen for the edge cases:

* A window is half-open: active from its start (inclusive) to its end (exclusive).
* An end earlier than the start crosses midnight and the window belongs to the day it
  *starts*: a Friday 22:00-02:00 window is active on Saturday at 01:00. An end of ``24:00``
  is midnight at the end of the start day.
* A dated exception replaces the windows that *start* on its days. An overnight window that
  started on the day before the exception still ends as planned (the evening before a
  holiday runs to its normal end); an exception's own overnight window runs into the next day.
  When several exceptions cover a date, the one with the shortest range wins (a one-off
  special day inside a term break), ties going to the one listed first.
* A wall time skipped by a DST change (clocks go forward) maps to the first instant after
  the gap, i.e. the moment of the change. A window lying wholly inside the gap is dropped.
* A wall time that happens twice (clocks go back) maps to its first occurrence, for starts and
  ends alike: "lights out at 01:30" ends the window the first time the clock shows 01:30.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from filterdns.config.model import WEEKDAYS, ScheduleConfig

# How far next_change looks ahead; beyond it the caller simply asks again later.
LOOKAHEAD = timedelta(days=8)
_MINUTES_PER_DAY = 24 * 60
# Compiled days kept per schedule; a server only ever looks at a handful around "now".
_DAY_CACHE_SIZE = 64


@dataclass(frozen=True, slots=True)
class Window:
    """An active window: which schedule, a readable label and its real start and end.

    ``start`` and ``end`` are in the schedule's time zone for display; compare them with
    ``.timestamp()`` or after ``astimezone(timezone.utc)``, not directly with other datetimes
    of the same zone (Python ignores ``fold`` there)."""

    schedule: str
    label: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class _WindowPlan:
    """One window as written: minutes after midnight of the start day, and its label."""

    start: int
    end: int  # > start; past 1440 when the window crosses midnight
    label: str


@dataclass(frozen=True, slots=True)
class _Span:
    """A window compiled for one calendar day into POSIX timestamps."""

    start: float
    end: float
    label: str


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(minutes) < 60 and 0 <= value <= _MINUTES_PER_DAY):
        raise ValueError(f"'{text}' is not a time of day HH:MM")
    return value


def _plan(start_text: str, end_text: str, label_prefix: str) -> _WindowPlan:
    start, end = _minutes(start_text), _minutes(end_text)
    if end <= start:
        end += _MINUTES_PER_DAY
    return _WindowPlan(start, end, f"{label_prefix} {start_text}-{end_text}")


def wall_to_timestamp(wall: datetime, zone: ZoneInfo) -> float:
    """The POSIX time at which clocks in ``zone`` show the naive ``wall`` time.

    Repeated wall times give their first occurrence; skipped ones give the instant of the
    change that skipped them (the first instant after the gap)."""
    stamp = wall.replace(tzinfo=zone, fold=0).timestamp()
    if datetime.fromtimestamp(stamp, zone).replace(tzinfo=None) == wall:
        return stamp
    # Inside a gap: fold=1 reads the wall time with the offset after the change, giving an
    # instant before the change; fold=0 gives one after it. Bisect for the change itself.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    after = int(stamp)
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > wall:
            after = middle
        else:
            before = middle
    return float(after)


class Schedule:
    """A compiled ``ScheduleConfig``: answers "which window is active at this instant?"."""

    def __init__(self, config: ScheduleConfig):
        self.name = config.name
        self.zone = ZoneInfo(config.timezone)
        self._weekly: tuple[tuple[_WindowPlan, ...], ...] = tuple(
            tuple(_plan(s, e, day.capitalize()) for s, e in config.weekly.get(day, ()))
            for day in WEEKDAYS
        )
        ranked = sorted(
            enumerate(config.exceptions),
            key=lambda item: (date.fromisoformat(item[1].end) - date.fromisoformat(item[1].start), item[0]),
        )
        self._exceptions: tuple[tuple[date, date, tuple[_WindowPlan, ...]], ...] = tuple(
            (
                date.fromisoformat(exc.start),
                date.fromisoformat(exc.end),
                tuple(_plan(s, e, exc.name) for s, e in exc.windows),
            )
            for _, exc in ranked
        )
        self._days: dict[date, tuple[_Span, ...]] = {}

    def __repr__(self) -> str:
        return f"Schedule({self.name!r}, {self.zone.key!r})"

    def active_window(self, when: datetime) -> Window | None:
        """The window active at the aware instant ``when``, or None.

        If windows overlap, the one that started first is reported."""
        stamp = when.timestamp()
        day = self._local_date(when)
        span = self._span_at(self._spans(day - timedelta(days=1)) + self._spans(day), stamp)
        return None if span is None else self._window(span)

    def next_change(self, when: datetime) -> datetime | None:
        """The next instant after ``when`` at which ``active_window`` gives a different answer
        (a window opens, closes, or hands over to an abutting one), in UTC; None if there is
        none within ``LOOKAHEAD``."""
        stamp = when.timestamp()
        horizon = stamp + LOOKAHEAD.total_seconds()
        first = self._local_date(when) - timedelta(days=1)
        spans: tuple[_Span, ...] = ()
        for offset in range(LOOKAHEAD.days + 2):
            spans += self._spans(first + timedelta(days=offset))
        current = self._span_at(spans, stamp)
        edges = sorted({edge for span in spans for edge in (span.start, span.end) if stamp < edge <= horizon})
        for edge in edges:
            if self._span_at(spans, edge) != current:
                return datetime.fromtimestamp(edge, timezone.utc)
        return None

    def _local_date(self, when: datetime) -> date:
        if when.tzinfo is None:
            raise ValueError("schedule times must be timezone-aware")
        return when.astimezone(self.zone).date()

    @staticmethod
    def _span_at(spans: tuple[_Span, ...], stamp: float) -> _Span | None:
        for span in spans:
            if span.start <= stamp < span.end:
                return span
        return None

    def _window(self, span: _Span) -> Window:
        return Window(
            self.name,
            span.label,
            datetime.fromtimestamp(span.start, self.zone),
            datetime.fromtimestamp(span.end, self.zone),
        )

    def _plans_for(self, day: date) -> tuple[_WindowPlan, ...]:
        for start, end, plans in self._exceptions:
            if start <= day <= end:
                return plans
        return self._weekly[day.weekday()]

    def _spans(self, day: date) -> tuple[_Span, ...]:
        """The windows starting on ``day`` as timestamps, sorted by start (memoised)."""
        spans = self._days.get(day)
        if spans is None:
            midnight = datetime.combine(day, time())
            compiled = []
            for plan in self._plans_for(day):
                start = wall_to_timestamp(midnight + timedelta(minutes=plan.start), self.zone)
                end = wall_to_timestamp(midnight + timedelta(minutes=plan.end), self.zone)
                if end > start:
                    compiled.append(_Span(start, end, plan.label))
            spans = tuple(sorted(compiled, key=lambda span: span.start))
            if len(self._days) >= _DAY_CACHE_SIZE:
                self._days.clear()
            self._days[day] = spans
        return spans
