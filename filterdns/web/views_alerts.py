"""Safeguarding alerts in the console: the list of open and acknowledged alerts, one alert
with the blocked lookups of its burst and the Acknowledge form (a note is required), and
the alert rules, edited as part of the policy (validated, saved as a revision and audited
by ``Control.apply_policy``). The navigation shows how many alerts are open.

Admins only; viewers are kept out too. An alert singles out one child's device (or a class)
as a safeguarding concern, which is for the designated safeguarding lead and the staff they
choose, on a need-to-know basis. Viewers are read-only accounts for IT staff and auditors:
what they need of this (that alerts were raised and acknowledged, and rules changed) is in
the audit log, which names no device and carries no note; the rules themselves are policy,
visible in the revisions. Teachers and parents get 403 as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

from aiohttp import web
from multidict import MultiMapping

from filterdns.alerts.notices import device_words
from filterdns.alerts.rules import SUBJECT_WORDS, remove_alert_rule, set_alert_rule
from filterdns.config.loader import ConfigError
from filterdns.config.model import AlertRule, AlertSubject
from filterdns.store import Alert, EventFilter
from filterdns.store.alerts import BYPASS_CATEGORY, attempt_category
from filterdns.store.base import Row
from filterdns.web.auth import SAFEGUARDING_ROLES, require
from filterdns.web.common import (
    NavItem,
    add_nav,
    all_group_names,
    control_of,
    render,
    user_of,
)
from filterdns.web.confirm import confirmation, confirmed
from filterdns.web.consequences import alert_rule_removal
from filterdns.web.views_policy import (
    StaleForm,
    apply_change,
    comment_for,
    notice,
    problems_of,
)

ALERT_ROLES = SAFEGUARDING_ROLES
OPEN_SHOWN = 200  # open alerts listed at once; more than that is a matter for the lead anyway
PAGE_SIZE = 50  # acknowledged alerts per page
LOOKUPS_SHOWN = 200
NOTE_MAX = 2000
RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ACKNOWLEDGED = "Alert acknowledged."


async def open_count(request: web.Request) -> int:
    """The number next to Alerts in the navigation."""
    return await control_of(request).store.open_alert_count()


def _alert_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such alert.") from None


async def _alert_or_404(request: web.Request) -> Alert:
    alert = await control_of(request).store.get_alert(_alert_id(request))
    if alert is None:
        raise web.HTTPNotFound(text="No such alert.")
    return alert


def _rule(request: web.Request, name: str) -> AlertRule | None:
    return next((r for r in control_of(request).config.policy.alert_rules if r.name == name), None)


# --- alerts -----------------------------------------------------------------------------------


@require(*ALERT_ROLES)
async def alerts_page(request: web.Request) -> web.StreamResponse:
    store = control_of(request).store
    before_text = request.query.get("before", "")
    if before_text and not before_text.isdigit():
        raise web.HTTPBadRequest(text="before is an alert number")
    acknowledged = await store.list_alerts(
        status="acknowledged", limit=PAGE_SIZE + 1, before_id=int(before_text) if before_text else None
    )
    older = acknowledged[PAGE_SIZE - 1].id if len(acknowledged) > PAGE_SIZE else None
    return await render(
        request,
        "alerts.html",
        {
            "open_alerts": await store.list_alerts(status="open", limit=OPEN_SHOWN),
            "acknowledged": acknowledged[:PAGE_SIZE],
            "older": older,
            "paged": bool(before_text),
            "device": device_words,
        },
    )


async def burst_lookups(request: web.Request, alert: Alert) -> tuple[list[Row], bool]:
    """The blocked lookups of the alert's burst that count for it, newest first (at most
    ``LOOKUPS_SHOWN``), and whether there are more. One query-log search per category;
    canary names have no category, so "bypass" also searches the uncategorised blocks."""
    store = control_of(request).store
    kind = alert.subject_kind
    searched = set(alert.categories) | ({""} if BYPASS_CATEGORY in alert.categories else set())
    rows: list[Row] = []
    more = False
    for category in sorted(searched):
        page = await store.search_events(
            EventFilter(
                groups=(alert.subject,) if kind == "group" else None,
                client=alert.subject if kind == "client" else None,
                pupil=alert.subject if kind == "pupil" else None,
                verdict="blocked",
                category=category,
                since=alert.first_time,
                until=math.nextafter(alert.last_time, math.inf),
            ),
            limit=LOOKUPS_SHOWN,
        )
        more = more or page.has_more
        rows.extend(r for r in page.rows if attempt_category(r["reason"], r["category"]) in alert.categories)
    rows.sort(key=lambda r: (r["time"], r["id"]), reverse=True)
    return rows[:LOOKUPS_SHOWN], more or len(rows) > LOOKUPS_SHOWN


async def _alert_page(request: web.Request, alert: Alert, *, errors: Sequence[str] = (), note: str = "",
                      status: int = 200) -> web.Response:  # fmt: skip
    lookups, more = await burst_lookups(request, alert)
    querylog = {"verdict": "blocked", "since": f"{alert.first_time:.3f}", "until": f"{alert.last_time + 1:.3f}"}
    querylog[alert.subject_kind] = alert.subject  # the kinds are the query log's field names
    return await render(
        request,
        "alert.html",
        {
            "alert": alert,
            "rule": _rule(request, alert.rule),
            "device": device_words(alert),
            "lookups": lookups,
            "subject_words": SUBJECT_WORDS,
            "more": more,
            "querylog": querylog,
            "errors": list(errors),
            "note": note,
            "notice": ACKNOWLEDGED if request.query.get("done") == "acknowledged" else "",
        },
        status=status,
    )


@require(*ALERT_ROLES)
async def alert_page(request: web.Request) -> web.StreamResponse:
    return await _alert_page(request, await _alert_or_404(request))


@require(*ALERT_ROLES)
async def acknowledge(request: web.Request) -> web.StreamResponse:
    alert = await _alert_or_404(request)
    form = await request.post()
    note = str(form.get("note", "")).strip()
    if not note:
        return await _alert_page(request, alert, errors=["Write a note: what was done, or why nothing needs doing."],
                                 status=422)  # fmt: skip
    if len(note) > NOTE_MAX:
        return await _alert_page(request, alert, errors=[f"A note has at most {NOTE_MAX} characters."], note=note,
                                 status=422)  # fmt: skip
    user = user_of(request)
    done = await control_of(request).acknowledge_alert(alert, by=user.name, note=note)
    if done is None:
        current = await _alert_or_404(request)
        return await _alert_page(
            request, current, errors=[f"{current.acknowledged_by} acknowledged this alert already."], status=409
        )
    raise web.HTTPSeeOther(f"/alerts/{alert.id}?done=acknowledged")


# --- rules ------------------------------------------------------------------------------------


NEW_RULE = AlertRule("", threshold=5, window=600.0)


def rule_form(rule: AlertRule) -> dict[str, Any]:
    """A rule as its form shows it."""
    return {
        "name": rule.name,
        "categories": set(rule.categories),
        "bypass": rule.bypass,
        "threshold": str(rule.threshold),
        "minutes": f"{rule.window / 60:g}",
        "per": rule.per,
        "groups": set(rule.groups),
        "email": "\n".join(rule.email),
        "webhooks": "\n".join(rule.webhooks),
        "comment": "",
    }


def typed_form(form: MultiMapping[Any]) -> dict[str, Any]:
    """The rule form's values as they were sent, to show them again."""
    return {
        "name": str(form.get("name", "")).strip(),
        "categories": {str(v) for v in form.getall("categories", [])},
        "bypass": bool(form.get("bypass")),
        "threshold": str(form.get("threshold", "")).strip(),
        "minutes": str(form.get("minutes", "")).strip(),
        "per": str(form.get("per", "client")),
        "groups": {str(v) for v in form.getall("groups", [])},
        "email": str(form.get("email", "")),
        "webhooks": str(form.get("webhooks", "")),
        "comment": str(form.get("comment", "")),
    }


def parse_rule(typed: Mapping[str, Any]) -> AlertRule:
    """The rule a form describes. Only what is needed to build it is checked here; known
    categories and groups, addresses, URLs and "categories or bypass" are the loader's job."""
    if not RULE_NAME.fullmatch(typed["name"]):
        raise ValueError("a rule name is letters, digits, - and _ (e.g. self-harm, bypass-attempts)")
    try:
        threshold = int(typed["threshold"])
    except ValueError:
        raise ValueError("the number of attempts is a whole number, such as 5") from None
    try:
        minutes = float(typed["minutes"])
    except ValueError:
        raise ValueError("the time is a number of minutes, such as 10") from None
    if not math.isfinite(minutes) or minutes <= 0:
        raise ValueError("the time is a number of minutes above zero")
    if typed["per"] not in SUBJECT_WORDS:
        raise ValueError("count attempts per device, per pupil or per group")
    return AlertRule(
        name=typed["name"],
        categories=tuple(sorted(typed["categories"])),
        bypass=bool(typed["bypass"]),
        threshold=threshold,
        window=round(minutes * 60, 3),
        per=cast(AlertSubject, typed["per"]),
        groups=tuple(sorted(typed["groups"])),
        email=tuple(item.strip() for line in typed["email"].splitlines() for item in line.split(",") if item.strip()),
        webhooks=tuple(typed["webhooks"].split()),
    )


def _form_context(request: web.Request) -> dict[str, Any]:
    """What both rule pages' forms need: the revision they are drawn from, and the choices."""
    control = control_of(request)
    revision, _ = control.policy_document()
    return {"revision": revision, "categories": control.categories(), "groups": all_group_names(control)}


async def _rules_page(request: web.Request, form: Mapping[str, Any] | None = None, *, problems: Sequence[str] = (),
                      status: int = 200) -> web.Response:  # fmt: skip
    return await render(
        request,
        "alert_rules.html",
        {
            "rules": control_of(request).config.policy.alert_rules,
            "form": form or rule_form(NEW_RULE),
            "problems": list(problems),
            "notice": notice(request),
            "subject_words": SUBJECT_WORDS,
            **_form_context(request),
        },
        status=status,
    )


async def _rule_page(request: web.Request, form: Mapping[str, Any], *, problems: Sequence[str] = (),
                     status: int = 200) -> web.Response:  # fmt: skip
    context = {"form": form, "problems": list(problems), **_form_context(request)}
    return await render(request, "alert_rule.html", context, status=status)


def _rule_or_404(request: web.Request) -> AlertRule:
    rule = _rule(request, request.match_info["name"])
    if rule is None:
        raise web.HTTPNotFound(text="There is no alert rule of that name.")
    return rule


@require(*ALERT_ROLES)
async def rules_page(request: web.Request) -> web.StreamResponse:
    return await _rules_page(request)


@require(*ALERT_ROLES)
async def rule_page(request: web.Request) -> web.StreamResponse:
    return await _rule_page(request, rule_form(_rule_or_404(request)))


async def _save(request: web.Request, existing: AlertRule | None) -> web.StreamResponse:
    """Add a rule (``existing`` None) or replace one, as a new policy revision."""
    form = await request.post()
    typed = typed_form(form) | ({"name": existing.name} if existing else {})
    shown = _rule_page if existing else _rules_page
    try:
        if existing is None and _rule(request, typed["name"]) is not None:
            raise ValueError(f"there is a rule called {typed['name']} already")
        rule = parse_rule(typed)
        what = f"{'change' if existing else 'add'} alert rule {rule.name}"
        revision = await apply_change(request, lambda doc: set_alert_rule(doc, rule), comment_for(form, what),
                                      drawn_from=str(form.get("revision", "")))  # fmt: skip
    except StaleForm as error:
        # Show the rule as it is now rather than silently undoing someone else's change.
        current = _rule(request, typed["name"]) if existing else None
        return await shown(request, rule_form(current) if current else typed, problems=[str(error)], status=409)
    except (ConfigError, ValueError, KeyError) as error:
        return await shown(request, typed, problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/alerts/rules?saved={revision}")


@require(*ALERT_ROLES)
async def add_rule(request: web.Request) -> web.StreamResponse:
    return await _save(request, None)


@require(*ALERT_ROLES)
async def change_rule(request: web.Request) -> web.StreamResponse:
    return await _save(request, _rule_or_404(request))


@require(*ALERT_ROLES)
async def delete_rule(request: web.Request) -> web.StreamResponse:
    rule = _rule_or_404(request)
    form = await request.post()
    if not confirmed(form):
        return await confirmation(
            request, form, title=f"Remove the alert rule {rule.name}?", consequences=alert_rule_removal(rule),
            button=f"Remove {rule.name}", cancel=f"/alerts/rules/{quote(rule.name, safe='')}",
        )  # fmt: skip
    try:
        revision = await apply_change(
            request, lambda doc: remove_alert_rule(doc, rule.name), comment_for(form, f"remove alert rule {rule.name}")
        )
    except (ConfigError, ValueError, KeyError) as error:
        return await _rule_page(request, rule_form(rule), problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/alerts/rules?saved={revision}")


def setup(app: web.Application) -> None:
    app.router.add_get("/alerts", alerts_page, name="alerts")
    app.router.add_get("/alerts/rules", rules_page, name="alert_rules")
    app.router.add_post("/alerts/rules", add_rule)
    app.router.add_get("/alerts/rules/{name}", rule_page)
    app.router.add_post("/alerts/rules/{name}", change_rule)
    app.router.add_post("/alerts/rules/{name}/delete", delete_rule)
    app.router.add_get(r"/alerts/{id:\d+}", alert_page, name="alert")
    app.router.add_post(r"/alerts/{id:\d+}/acknowledge", acknowledge)
    add_nav(app, NavItem("/alerts", "Alerts", ALERT_ROLES, "nav-alerts", count=open_count))
