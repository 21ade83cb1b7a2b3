"""Schedules: window edges, overnight windows, exceptions and DST change days."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from filterdns.config.model import ScheduleConfig, ScheduleException
from filterdns.policy.schedule import Schedule, wall_to_timestamp

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")

LESSONS = {day: (("08:45", "10:15"), ("10:30", "12:00")) for day in ("mon", "tue", "wed", "thu", "fri")}


def schedule(zone: str = "Europe/London", weekly=None, exceptions=()) -> Schedule:
    return Schedule(ScheduleConfig("lessons", zone, LESSONS if weekly is None else weekly, tuple(exceptions)))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)


# 2024-09-02 is a Monday; London is on BST (UTC+1) then.


def test_window_start_inclusive_end_exclusive():
    lessons = schedule()
    assert lessons.active_window(local(LONDON, 2024, 9, 2, 8, 44, 59)) is None
    window = lessons.active_window(local(LONDON, 2024, 9, 2, 8, 45))
    assert window is not None
    assert (window.schedule, window.label) == ("lessons", "Mon 08:45-10:15")
    assert window.start == local(LONDON, 2024, 9, 2, 8, 45)
    assert window.end == local(LONDON, 2024, 9, 2, 10, 15)
    assert lessons.active_window(local(LONDON, 2024, 9, 2, 10, 14, 59)).label == "Mon 08:45-10:15"
    assert lessons.active_window(local(LONDON, 2024, 9, 2, 10, 15)) is None
    assert lessons.active_window(local(LONDON, 2024, 9, 2, 10, 30)).label == "Mon 10:30-12:00"


def test_weekend_has_no_windows():
    lessons = schedule()
    assert lessons.active_window(local(LONDON, 2024, 9, 7, 9, 0)) is None  # Saturday


def test_schedule_zone_versus_utc_clock():
    lessons = schedule()
    # 07:45 UTC is 08:45 BST: the window opens by the school's clock, not the server's.
    assert lessons.active_window(utc(2024, 9, 2, 7, 44)) is None
    assert lessons.active_window(utc(2024, 9, 2, 7, 45)).label == "Mon 08:45-10:15"
    # In winter London is on GMT, so the same wall time is 08:45 UTC.
    assert lessons.active_window(utc(2024, 12, 2, 7, 45)) is None
    assert lessons.active_window(utc(2024, 12, 2, 8, 45)).label == "Mon 08:45-10:15"
    # Any zone works for the question: 03:45 in New York is 08:45 in London.
    assert lessons.active_window(local(NEW_YORK, 2024, 9, 2, 3, 45)).label == "Mon 08:45-10:15"


def test_naive_datetime_is_rejected():
    with pytest.raises(ValueError):
        schedule().active_window(datetime(2024, 9, 2, 9, 0))


def test_overnight_window_belongs_to_its_start_day():
    night = schedule(weekly={"fri": (("22:00", "02:00"),)})
    window = night.active_window(local(LONDON, 2024, 9, 7, 1, 0))  # Saturday 01:00
    assert window is not None and window.label == "Fri 22:00-02:00"
    assert window.start == local(LONDON, 2024, 9, 6, 22, 0)
    assert night.active_window(local(LONDON, 2024, 9, 7, 2, 0)) is None
    assert night.active_window(local(LONDON, 2024, 9, 6, 21, 59)) is None
    # Nothing starts on Saturday night.
    assert night.active_window(local(LONDON, 2024, 9, 7, 23, 0)) is None


def test_end_at_midnight():
    evening = schedule(weekly={"mon": (("20:00", "24:00"),)})
    assert evening.active_window(local(LONDON, 2024, 9, 2, 23, 59)).label == "Mon 20:00-24:00"
    assert evening.active_window(local(LONDON, 2024, 9, 3, 0, 0)) is None


def test_holiday_range_removes_windows_inclusive():
    lessons = schedule(exceptions=[ScheduleException("half term", "2024-10-28", "2024-11-01")])
    assert lessons.active_window(local(LONDON, 2024, 10, 25, 9, 0)) is not None  # Friday before
    assert lessons.active_window(local(LONDON, 2024, 10, 28, 9, 0)) is None  # first day
    assert lessons.active_window(local(LONDON, 2024, 11, 1, 9, 0)) is None  # last day
    assert lessons.active_window(local(LONDON, 2024, 11, 4, 9, 0)) is not None  # back at school


def test_special_day_inside_a_term_break_wins():
    lessons = schedule(
        exceptions=[
            ScheduleException("summer", "2024-07-20", "2024-09-03"),
            ScheduleException("open day", "2024-08-28", "2024-08-28", (("10:00", "14:00"),)),
        ]
    )
    assert lessons.active_window(local(LONDON, 2024, 8, 27, 10, 30)) is None
    window = lessons.active_window(local(LONDON, 2024, 8, 28, 10, 30))  # a Wednesday
    assert window is not None and window.label == "open day 10:00-14:00"
    assert lessons.active_window(local(LONDON, 2024, 8, 28, 9, 0)) is None  # weekly plan replaced
    assert lessons.active_window(local(LONDON, 2024, 9, 4, 9, 0)) is not None


def test_overnight_window_before_a_holiday_ends_as_planned():
    night = schedule(
        weekly={day: (("22:00", "06:00"),) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        exceptions=[ScheduleException("bank holiday", "2024-08-26", "2024-08-26")],
    )
    # Sunday night's window runs into the holiday Monday; none starts on Monday night.
    assert night.active_window(local(LONDON, 2024, 8, 26, 5, 0)).label == "Sun 22:00-06:00"
    assert night.active_window(local(LONDON, 2024, 8, 26, 23, 0)) is None
    assert night.active_window(local(LONDON, 2024, 8, 27, 5, 0)) is None
    assert night.active_window(local(LONDON, 2024, 8, 27, 23, 0)).label == "Tue 22:00-06:00"


def test_next_change_follows_the_windows():
    lessons = schedule()
    assert lessons.next_change(local(LONDON, 2024, 9, 2, 7, 0)) == local(LONDON, 2024, 9, 2, 8, 45)
    assert lessons.next_change(local(LONDON, 2024, 9, 2, 8, 45)) == local(LONDON, 2024, 9, 2, 10, 15)
    # Friday after lessons: the next change is Monday morning.
    assert lessons.next_change(local(LONDON, 2024, 9, 6, 13, 0)) == local(LONDON, 2024, 9, 9, 8, 45)
    assert lessons.next_change(utc(2024, 9, 2, 7, 0)).tzinfo is UTC


def test_next_change_reports_handover_between_abutting_windows():
    back_to_back = schedule(weekly={"mon": (("09:00", "10:00"), ("10:00", "11:00"))})
    assert back_to_back.next_change(local(LONDON, 2024, 9, 2, 9, 30)) == local(LONDON, 2024, 9, 2, 10, 0)
    assert back_to_back.next_change(local(LONDON, 2024, 9, 2, 10, 0)) == local(LONDON, 2024, 9, 2, 11, 0)


def test_next_change_gives_up_after_eight_days():
    lessons = schedule(exceptions=[ScheduleException("summer", "2024-07-20", "2024-09-03")])
    assert lessons.next_change(local(LONDON, 2024, 7, 22, 9, 0)) is None
    assert lessons.next_change(local(LONDON, 2024, 8, 28, 9, 0)) == local(LONDON, 2024, 9, 4, 8, 45)
    assert schedule(weekly={}).next_change(utc(2024, 9, 2)) is None


# --- DST: Europe/London changes at 01:00 UTC (2024-03-31 forward, 2024-10-27 back) -------


def test_london_spring_forward_window_starting_in_the_gap():
    early = schedule(weekly={"sun": (("01:30", "03:00"),)})
    # 01:30 does not exist on 2024-03-31; the window opens at the change (01:00 UTC = 02:00 BST).
    assert early.active_window(utc(2024, 3, 31, 0, 59)) is None
    window = early.active_window(utc(2024, 3, 31, 1, 0))
    assert window is not None
    assert window.start.astimezone(UTC) == utc(2024, 3, 31, 1, 0)
    assert window.end.astimezone(UTC) == utc(2024, 3, 31, 2, 0)  # 03:00 BST
    assert early.next_change(utc(2024, 3, 31, 0, 0)) == utc(2024, 3, 31, 1, 0)


def test_london_overnight_windows_across_both_changes():
    night = schedule(weekly={"sat": (("22:00", "06:00"),)})
    spring = night.active_window(utc(2024, 3, 31, 3, 0))
    assert spring.end.timestamp() - spring.start.timestamp() == 7 * 3600  # an hour short
    assert night.active_window(utc(2024, 3, 31, 5, 0)) is None  # 06:00 BST
    autumn = night.active_window(utc(2024, 10, 27, 5, 30))
    assert autumn.end.timestamp() - autumn.start.timestamp() == 9 * 3600  # an hour long
    assert night.active_window(utc(2024, 10, 27, 6, 0)) is None  # 06:00 GMT


def test_london_repeated_hour_uses_first_occurrence():
    window_in_fold = schedule(weekly={"sun": (("01:00", "01:30"),)})
    # 01:00-01:30 happens twice on 2024-10-27; the window is the first one (BST).
    assert window_in_fold.active_window(local(LONDON, 2024, 10, 27, 1, 15, fold=0)) is not None
    assert window_in_fold.active_window(local(LONDON, 2024, 10, 27, 1, 15, fold=1)) is None
    assert window_in_fold.active_window(utc(2024, 10, 27, 0, 0)).end.astimezone(UTC) == utc(2024, 10, 27, 0, 30)


# --- DST: America/New_York (2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00) ---------


def test_new_york_spring_forward_window_starting_in_the_gap():
    sched = schedule("America/New_York", weekly={"sun": (("02:15", "04:00"),)})
    # Sunday 2024-03-10: 02:15 is skipped; the window opens at 03:00 EDT = 07:00 UTC.
    assert sched.active_window(utc(2024, 3, 10, 6, 59)) is None
    assert sched.active_window(utc(2024, 3, 10, 7, 0)).label == "Sun 02:15-04:00"
    assert sched.active_window(utc(2024, 3, 10, 8, 0)) is None  # 04:00 EDT


def test_new_york_overnight_windows_across_both_changes():
    night = schedule("America/New_York", weekly={"sat": (("23:00", "02:00"),)})
    # 2024-03-10: the end, 02:00, is skipped, so the window ends at the change (07:00 UTC).
    spring = night.active_window(utc(2024, 3, 10, 6, 59))
    assert spring.start.astimezone(UTC) == utc(2024, 3, 10, 4, 0)
    assert spring.end.astimezone(UTC) == utc(2024, 3, 10, 7, 0)
    # 2024-11-03: 01:00-02:00 happens twice, so the window lasts four hours.
    autumn = night.active_window(utc(2024, 11, 3, 6, 30))
    assert autumn.label == "Sat 23:00-02:00"
    assert autumn.start.astimezone(UTC) == utc(2024, 11, 3, 3, 0)
    assert autumn.end.astimezone(UTC) == utc(2024, 11, 3, 7, 0)


# --- DST: America/Sao_Paulo, 2018-11-04 skipped midnight; 2019-02-17 repeated 23:00 hour ----


def test_sao_paulo_skipped_midnight():
    sched = schedule("America/Sao_Paulo", weekly={"sun": (("00:00", "02:00"),), "sat": (("22:00", "00:30"),)})
    # 2018-11-04 00:00 -03 did not exist: clocks went to 01:00 -02 at 03:00 UTC.
    saturday = sched.active_window(utc(2018, 11, 4, 2, 59))
    assert saturday.label == "Sat 22:00-00:30"
    assert saturday.end.astimezone(UTC) == utc(2018, 11, 4, 3, 0)  # 00:30 is in the gap
    sunday = sched.active_window(utc(2018, 11, 4, 3, 0))
    assert sunday.label == "Sun 00:00-02:00"
    assert sunday.start.astimezone(UTC) == utc(2018, 11, 4, 3, 0)
    assert sunday.end.astimezone(UTC) == utc(2018, 11, 4, 4, 0)  # 02:00 -02


def test_sao_paulo_repeated_hour_before_midnight():
    sched = schedule("America/Sao_Paulo", weekly={"sat": (("23:30", "00:30"),)})
    # 2019-02-16 23:00-23:59 happened twice (-02, then -03); the window starts at the first.
    window = sched.active_window(utc(2019, 2, 17, 2, 0))
    assert window.start.astimezone(UTC) == utc(2019, 2, 17, 1, 30)
    assert window.end.astimezone(UTC) == utc(2019, 2, 17, 3, 30)


def test_wall_to_timestamp_maps_gap_to_the_change():
    assert wall_to_timestamp(datetime(2024, 3, 31, 1, 0), LONDON) == utc(2024, 3, 31, 1, 0).timestamp()
    assert wall_to_timestamp(datetime(2024, 3, 31, 1, 59), LONDON) == utc(2024, 3, 31, 1, 0).timestamp()
    assert wall_to_timestamp(datetime(2024, 3, 31, 2, 0), LONDON) == utc(2024, 3, 31, 1, 0).timestamp()
    assert wall_to_timestamp(datetime(2024, 6, 1, 12, 0), LONDON) == utc(2024, 6, 1, 11, 0).timestamp()


def test_window_wholly_inside_a_gap_is_dropped():
    sched = schedule(weekly={"sun": (("01:10", "01:50"),)})
    stamp = utc(2024, 3, 31, 0, 30)
    assert sched.active_window(stamp) is None
    assert sched.active_window(stamp + timedelta(hours=1)) is None
    assert sched.next_change(stamp) == local(LONDON, 2024, 4, 7, 1, 10)  # the next Sunday
