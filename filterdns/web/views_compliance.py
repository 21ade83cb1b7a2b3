"""The term/compliance export for school leadership: ``/compliance`` is a form (site, first
and last day) above the report itself, laid out to be printed (compliance.css); and
``/compliance.csv`` is the same report as one CSV file of titled sections that a
spreadsheet opens as it is (UTF-8 with a byte order mark, which Excel needs to read
accents; every text cell that a spreadsheet would run as a formula is neutralised).

Admins and viewers only (leadership accounts are viewers): the report names every group and
everyone who changed filtering. Every report shown or downloaded is audited
(``report.compliance_export``), so who took a copy of which report is on record too.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from filterdns.reports.compliance import (
    ALL_SITES,
    DEFAULT_WEEKS,
    MAX_DAYS,
    ComplianceReport,
    GroupFiltering,
    load_compliance,
    parse_range,
    sites,
)
from filterdns.web.auth import audit, require
from filterdns.web.common import NavItem, add_nav, control_of, format_time, render, user_of, zone_of

COMPLIANCE_ROLES = ("admin", "viewer")
EXPORT_ACTION = "report.compliance_export"
# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TIME_PATTERN = "%Y-%m-%d %H:%M"


def form_of(query: Mapping[str, str]) -> dict[str, str]:
    return {"site": query.get("site", ALL_SITES), "from": query.get("from", ""), "to": query.get("to", "")}


async def requested_report(request: web.Request, form: Mapping[str, str]) -> ComplianceReport:
    """The report the form asks for; ValueError (to show the person) for bad input."""
    control = control_of(request)
    now = time.time()
    period = parse_range(form["from"], form["to"], zone_of(request), now)
    return await load_compliance(control.store, control.config, form["site"], period, now=now)


async def audit_export(request: web.Request, report: ComplianceReport, kind: str) -> None:
    await audit(
        request, user_of(request).name, EXPORT_ACTION, report.site_label,
        format=kind, first=report.period.first.isoformat(), last=report.period.last.isoformat(),
    )  # fmt: skip


@require(*COMPLIANCE_ROLES)
async def compliance_page(request: web.Request) -> web.StreamResponse:
    form = form_of(request.query)
    errors: list[str] = []
    report = None
    try:
        report = await requested_report(request, form)
    except ValueError as exc:
        errors.append(str(exc))
    else:
        form.update({"from": report.period.first.isoformat(), "to": report.period.last.isoformat()})
        await audit_export(request, report, "page")
    context = {
        "form": form,
        "sites": sites(control_of(request).config),
        "report": report,
        "errors": errors,
        "max_days": MAX_DAYS,
        "default_weeks": DEFAULT_WEEKS,
        "prepared_by": user_of(request).name,
    }
    return await render(request, "compliance.html", context, status=400 if errors else 200)


@require(*COMPLIANCE_ROLES)
async def compliance_csv(request: web.Request) -> web.StreamResponse:
    try:
        report = await requested_report(request, form_of(request.query))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    await audit_export(request, report, "csv")
    text = csv_document(report, zone_of(request), user_of(request).name)
    return web.Response(
        text="\ufeff" + text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{csv_filename(report)}"'},
    )


# --- CSV -----------------------------------------------------------------------------------------


def safe_cell(value: object) -> object:
    """A cell as written: numbers as they are; text that a spreadsheet would take for a
    formula (a group or site name such as ``=HYPERLINK(...)``) behind a quote mark."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_filename(report: ComplianceReport) -> str:
    site = re.sub(r"[^A-Za-z0-9._-]+", "-", report.site_label).strip("-.") or "site"
    return f"compliance-{site}-{report.period.first.isoformat()}-{report.period.last.isoformat()}.csv"


def _schedules(pairs: Iterable[tuple[str, Sequence[str]]]) -> str:
    return "; ".join(f"{name}: {', '.join(values)}" for name, values in pairs)


def _yes_no(value: bool) -> str:
    return "on" if value else "off"


FILTERING_COLUMNS = (
    "Group", "Site", "Description", "Always blocked", "Blocked on a schedule", "Allowed on a schedule", "Safe search",
    "YouTube restricted mode", "Bypass protection", "Allow list (group)", "Deny list (group)", "Allow list (school)",
    "Deny list (school)", "In words",
)  # fmt: skip


def _filtering_row(g: GroupFiltering) -> list[object]:
    p = g.policy
    return [
        g.group, g.site, g.description, ", ".join(p.always), _schedules(p.during), _schedules(p.allowed_during),
        _yes_no(p.safe_search), p.youtube, _yes_no(p.bypass_protection), g.allow_domains, g.deny_domains,
        g.school_allow_domains, g.school_deny_domains, " ".join(g.words),
    ]  # fmt: skip


def csv_document(report: ComplianceReport, zone: ZoneInfo, prepared_by: str) -> str:
    """The report as CSV: titled sections separated by an empty row, each with a header."""
    out = io.StringIO()
    writer = csv.writer(out)

    def rows(*lines: Iterable[Any]) -> None:
        writer.writerows([safe_cell(cell) for cell in line] for line in lines)

    period = report.period
    rows(
        ["Filtering and compliance report"],
        ["Site", report.site_label],
        ["From", period.first.isoformat()],
        ["To", period.last.isoformat()],
        ["Time zone", report.timezone],
        ["Prepared", format_time(report.generated, zone, TIME_PATTERN), prepared_by],
        ["Lookups", report.queries],
        ["Blocked attempts", report.blocked],
        *(["Note", note] for note in report.notes()),
        [],
        [f"Filtering in force on {format_time(report.generated, zone, '%Y-%m-%d')}"],
        FILTERING_COLUMNS,
        *(_filtering_row(g) for g in report.groups),
        [],
        ["Categories blocked"],
        ["Category", "Description", "Always blocked for", "Blocked on a schedule for", "In the policy now"],
        *(
            [c.label, c.description, ", ".join(c.always), _schedules(c.scheduled), "yes" if c.in_policy else "no"]
            for c in report.categories
        ),
        [],
        ["Lookups and blocked attempts by group and category"],
        ["Group", "Lookups", "Blocked attempts", *(c.label for c in report.categories)],
        *(
            [line.group, line.queries, line.blocked, *(line.blocked_in(c.category) for c in report.categories)]
            for line in report.counts
        ),
        ["Total", report.queries, report.blocked, *(report.blocked_in(c.category) for c in report.categories)],
        [],
        ["Changes to filtering"],
        ["Time", "Who", "Action", "Target", "Groups", "What"],
        *(
            [format_time(c.time, zone, TIME_PATTERN), c.actor, c.action, c.target, c.scope, c.summary]
            for c in report.changes
        ),
    )
    return out.getvalue()


def setup(app: web.Application) -> None:
    app.router.add_get("/compliance", compliance_page, name="compliance")
    app.router.add_get("/compliance.csv", compliance_csv, name="compliance-csv")
    add_nav(app, NavItem("/compliance", "Compliance", COMPLIANCE_ROLES, "nav-compliance"))
