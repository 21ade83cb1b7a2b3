"""``schedules``: named weekly windows in a time zone, with dated exceptions."""

from __future__ import annotations

from filterdns.config import values as v
from filterdns.config.model import ScheduleConfig, ScheduleException
from filterdns.config.yamlnodes import Reader


def read_schedules(reader: Reader, default_zone: str) -> dict[str, ScheduleConfig]:
    """``schedules: {NAME: {timezone, weekly: {DAYS: [WINDOW]}, exceptions: [{name, dates,
    windows}]}}``; a schedule without a time zone takes the policy's."""
    ctx = reader.ctx
    schedules: dict[str, ScheduleConfig] = {}
    for name, node in reader.named("schedules", "schedule"):
        sub = Reader(ctx, node, f"schedules.{name}")
        zone = sub.get("timezone", v.parse_timezone, default_zone)
        weekly: dict[str, tuple[tuple[str, str], ...]] = {}
        weekly_reader = sub.sub("weekly")
        for days_text, (key_node, _) in weekly_reader.entries.items():
            try:
                days = v.parse_weekdays(days_text)
            except ValueError as error:
                ctx.fail(key_node, weekly_reader.child_path(days_text), str(error))
                continue
            windows = weekly_reader.get_list(days_text, v.parse_window)
            for day in days:
                weekly[day] = weekly.get(day, ()) + windows
        exceptions = []
        for i, item in enumerate(sub.items("exceptions")):
            exception = Reader(ctx, item, f"schedules.{name}.exceptions[{i}]")
            label = exception.get("name", v.text, "")
            dates = exception.get("dates", v.parse_date_range, None)
            windows = exception.get_list("windows", v.parse_window)
            exception.finish()
            if exception.node_of("dates") is None:
                ctx.fail(item, exception.path, "an exception needs 'dates' (2026-12-19 or 2026-12-19..2027-01-04)")
                continue
            if dates is None:
                continue  # already reported where the dates are
            exceptions.append(ScheduleException(label or dates[0], dates[0], dates[1], windows))
        sub.finish()
        schedules[name] = ScheduleConfig(name, zone, weekly, tuple(exceptions))
    return schedules
