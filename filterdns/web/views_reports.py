"""The weekly class safety report: for parents (their own classes), for staff (teachers
their own groups) under ``/reports``, and through shared read-only links (``/r/...``),
which admins and a group's teachers make there."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any, NoReturn
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup

from filterdns import i18n
from filterdns.config.model import GroupConfig
from filterdns.links import (
    SHARED_LINK_MAX_DAYS,
    link_path,
    link_secret,
    link_signature,
    new_shared_link,
    same_secret,
    within_link_lifetime,
)
from filterdns.reports.guidance import PERIODS
from filterdns.reports.weekly import (
    ReportSettings,
    WeeklyReport,
    find_group,
    load_report,
    retention_start,
    selectable_weeks,
)
from filterdns.store import User
from filterdns.web.auth import can_change_group, can_see_group, require
from filterdns.web.charts import Bar, Series, stacked_bars
from filterdns.web.common import NavItem, add_nav, all_group_names, control_of, render, user_of, zone_of
from filterdns.web.family import absolute, family_message, family_page, family_render, is_parent, translator_for

SHARE_DAYS_DEFAULT = 30
STAFF_REPORT_ROLES = ("admin", "teacher", "viewer")


def trend_chart(report: WeeklyReport, translator: i18n.Translator) -> Markup:
    """Blocked lookups per week; a masked week draws no bar (its table row says why)."""
    bars = [
        Bar(
            f"{point.week.start.day:02d}/{point.week.start.month:02d}",
            f"{translator.day(point.week.start)} – {translator.day(point.week.end)}",
            {"blocked": point.blocked.value or 0},
        )
        for point in report.trend
    ]
    return stacked_bars(
        bars,
        [Series("blocked", translator.gettext(i18n.N_("Blocked lookups")))],
        title=translator.gettext(i18n.N_("Blocked lookups per week")),
    )


def requested_day(request: web.Request) -> date | None:
    try:
        return date.fromisoformat(request.query.get("week", ""))
    except ValueError:
        return None


async def report_page(
    request: web.Request, group: GroupConfig, path: str, *, status: int = 200, **extra: Any
) -> web.Response:
    """The report of ``group`` for the week asked for (``?week=`` any day of it), at ``path``."""
    control = control_of(request)
    now = time.time()
    report = await load_report(
        control.store,
        control.config,
        group,
        requested_day(request),
        settings=ReportSettings(mask_below=control.config.node.reports.mask_below),
        now=now,
    )
    zone: ZoneInfo = zone_of(request)
    first, last = selectable_weeks(zone, now, retention_start(control.store, now))
    translator = await translator_for(request)
    context = {
        "report": report,
        "chart": trend_chart(report, translator),
        "path": path,
        "periods": PERIODS,
        "kept_since_day": datetime.fromtimestamp(report.kept_since, zone).date(),
        "week_min": first.start.isoformat(),
        "week_max": last.end.isoformat(),
        "previous_week": report.week.shifted(-1, zone).start.isoformat() if report.week.since > first.since else None,
        "next_week": report.week.shifted(1, zone).start.isoformat() if report.week.since < last.since else None,
        "staff": False,
        "can_share": False,
        "shared_link": None,
        "share_days": SHARE_DAYS_DEFAULT,
        "share_days_max": SHARED_LINK_MAX_DAYS,
        **extra,
    }
    return await family_render(request, "parents/report.html", context, status=status, translator=translator)


@family_page(login=True)
async def group_report(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    group = find_group(control_of(request).config, request.match_info["group"])
    allowed = group is not None and (group.name in user.groups if is_parent(user) else can_see_group(user, group.name))
    if not is_parent(user) and not allowed:
        _refuse_staff(user, request.match_info["group"], group is not None)
    if group is None or not allowed:
        return await family_message(request, 403, i18n.N_("Not one of your classes"), i18n.N_(
            "You can see the reports of your own child's classes only."))
    return await report_page(
        request, group, f"/reports/{quote(group.name, safe='')}",
        staff=not is_parent(user), can_share=_may_share(user, group.name),
    )  # fmt: skip


def _refuse_staff(user: User, name: str, exists: bool) -> NoReturn:
    """A member of staff asked for a report they may not see: the console's words for
    them (their groups, and who can change that), not the parents' "your child's classes"."""
    if not exists:
        raise web.HTTPNotFound(text=f"There is no group called {name}.")
    yours = ", ".join(user.groups) or "none yet"
    raise web.HTTPForbidden(
        text=f"{name} is not one of your groups, so its report is not yours to see (your groups: {yours}). "
        "An administrator can add it to your account on the Users page."
    )


def _may_share(user: User, group: str) -> bool:
    return user.role == "admin" or (user.role == "teacher" and can_change_group(user, group))


@require("admin", "teacher")
async def share_report(request: web.Request) -> web.StreamResponse:
    """Make a shared link to a group's reports, valid for the days asked for."""
    user = user_of(request)
    control = control_of(request)
    group = find_group(control.config, request.match_info["group"])
    if group is None:
        raise web.HTTPNotFound(text="No such group.")
    if not _may_share(user, group.name):
        raise web.HTTPForbidden(text="That group is not one of yours.")
    path = f"/reports/{quote(group.name, safe='')}"
    try:
        days = int(str((await request.post()).get("days", "")))
    except ValueError:
        days = 0
    if not 1 <= days <= SHARED_LINK_MAX_DAYS:
        raise web.HTTPBadRequest(text=f"A shared link lasts 1 to {SHARED_LINK_MAX_DAYS} days.")
    link = await new_shared_link(control.store, group.name, days, actor=user.name)
    return await report_page(
        request, group, path, status=201, staff=True, can_share=True, shared_link=absolute(request, link), share_days=days
    )


@family_page(login=False)
async def shared_report(request: web.Request) -> web.StreamResponse:
    """A report through a shared link: a bad signature is a 404 (it says nothing about
    which part was wrong), a good one past its expiry a 410."""
    info = request.match_info
    group = find_group(control_of(request).config, info["group"])
    try:
        expiry = int(info["expiry"])
    except ValueError:
        expiry = -1
    secret = await link_secret(control_of(request).store)
    genuine = expiry >= 0 and within_link_lifetime(expiry, time.time())
    if group is None or not genuine or not same_secret(info["signature"], link_signature(secret, group.name, expiry)):
        return await family_message(request, 404, i18n.N_("This link does not work"), i18n.N_(
            "Check that you copied all of it, or ask the school for a new one."))
    if expiry <= time.time():
        return await family_message(request, 410, i18n.N_("This link has expired"), i18n.N_(
            "Shared report links last a limited time. Ask the school for a new one."))
    return await report_page(request, group, link_path(group.name, expiry, info["signature"]))


@require(*STAFF_REPORT_ROLES)
async def reports_index(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    groups = [g for g in all_group_names(control_of(request)) if can_see_group(user, g)]
    return await render(request, "parents/index.html", {"groups": groups})


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get("/reports", reports_index, name="reports")
    router.add_get("/reports/{group}", group_report, name="report")
    router.add_post("/reports/{group}/share", share_report)
    router.add_get("/r/{group}/{expiry}/{signature}", shared_report, name="shared-report")
    add_nav(app, NavItem("/reports", "Class reports", STAFF_REPORT_ROLES, "nav-reports"))
