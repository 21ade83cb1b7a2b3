""""Check a domain": what the policy does with a name for a group (or a client address) at a
time, and every reason behind it, in plain words. Teachers may check their own groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web

from filterdns.policy.explanation import Explanation
from filterdns.policy.home import school_group
from filterdns.policy.schedule import Schedule
from filterdns.web.auth import check_group, group_picker, require
from filterdns.web.common import (
    CONSOLE_ROLES,
    NavItem,
    add_nav,
    control_of,
    format_time,
    local_input_value,
    parse_time,
    render,
    user_of,
    zone_of,
)
from filterdns.web.domain_input import name_to_look_up
from filterdns.web.schedule_words import day_sentence, lifted_by, rest_of_day

if TYPE_CHECKING:
    from filterdns.server.control import Control

DAY_REASONS = ("category", "scheduled-category", "default")  # verdicts the group's rules make
VERDICT_WORDS = {"allow": "Allowed", "block": "Blocked", "rewrite": "Answered with a safe-search address"}


def explain_for(request: web.Request, query: Mapping[str, str]) -> Explanation:
    """The explanation a form or API call asks for, if ``user`` may see the group it
    concerns. ValueError for bad input (no name, unknown group, bad address or time)."""
    user = user_of(request)
    zone = zone_of(request)
    if not query.get("name", "").strip():
        raise ValueError("type a domain name to check")
    name = name_to_look_up(query["name"])
    group = query.get("group", "").strip() or None
    client = query.get("client", "").strip() or None
    if client is None and group is None:
        raise ValueError("pick a group or type a client address")
    if client is None and group is not None:
        check_group(user, group)  # before computing anything about a group not theirs
    at = parse_time(query.get("at"), zone)
    when = datetime.fromtimestamp(at, timezone.utc).astimezone(zone) if at is not None else None
    where = query.get("where", "school")
    explanation = control_of(request).explain(name, group=None if client else group, client=client, at=when, where=where)
    check_group(user, school_group(explanation.group))
    return explanation


def category_day(control: Control, explanation: Explanation, zone: ZoneInfo) -> str:
    """The verdict's category for the rest of the day under the group's rules, in words
    (``schedule_words``); "" when no category or rule decided it, or when the group's
    setting alone does (then "at all times" is true)."""
    decision = explanation.decision
    group = next((g for g in control.groups() if g.name == explanation.group), None)
    if not decision.category or decision.reason not in DAY_REASONS or group is None:
        return ""
    schedules = {s.name: Schedule(s) for s in control.schedules()}
    day = rest_of_day(group, decision.category, schedules, explanation.at, zone)
    if day[0].blocked != (decision.action == "block"):
        return ""  # something beyond the rules decided (an override): the verdict says what
    lifted = lifted_by(group, decision.category)
    if len(day) == 1 and not day[0].schedule:
        if not lifted:
            return ""
        return f"{day_sentence(decision.category, group.name, day)}; {' and '.join(lifted)} allows it on other days"
    return day_sentence(decision.category, group.name, day)


def explanation_lines(
    explanation: Explanation, zone: ZoneInfo, sources: Mapping[str, Sequence[str]] | None = None,
    day: str = "",
) -> list[str]:
    """Every fact behind the verdict, one sentence each, for people; ``sources`` (category ->
    labels of the lists naming it, ``Control.listing_sources``) says which list is at fault;
    ``day`` (``category_day``) tells the verdict for the rest of the day, where the rules
    change it or lift it at other times, instead of the instant's "at all times"."""
    decision = explanation.decision
    descriptions = explanation.descriptions

    def described(category: str) -> str:
        description = descriptions.get(category)
        text = f"{category} ({description})" if description else category
        by = (sources or {}).get(category)
        return f"{text}, by {', '.join(by)}" if by else text

    verdict = VERDICT_WORDS.get(decision.action, decision.action)
    if decision.rewrite_target:
        verdict += f" ({decision.rewrite_target})"
    lines = [f"{verdict}: {day or decision.detail}."]
    if explanation.listings:
        for suffix, categories in explanation.listings:
            where = "" if suffix == explanation.name else f" (as {suffix})"
            lines.append(f"Listed{where} in: {', '.join(map(described, categories))}.")
    else:
        lines.append("It is not listed in any category.")
    for entry, source in explanation.list_entries:
        lines.append(f"{entry} is on {source}.")
    blocked = explanation.blocked_categories
    at = format_time(explanation.at.timestamp(), zone, "%a %d %b %Y %H:%M")
    if blocked:
        lines.append(f"Blocked for {explanation.group} at {at}: {', '.join(blocked)}.")
    else:
        lines.append(f"Nothing is blocked by category for {explanation.group} at {at}.")
    for window in explanation.windows:
        span = f"{window.start:%H:%M}–{window.end:%H:%M}"  # the schedule's own clock
        lines.append(f"Open schedule window: {window.schedule}, {window.label} ({span}).")
    return lines


def explanation_data(explanation: Explanation, zone: ZoneInfo) -> dict[str, Any]:
    """The explanation as JSON for the API."""
    decision = explanation.decision
    return {
        "name": explanation.name,
        "group": explanation.group,
        "at": explanation.at.timestamp(),
        "listings": [{"suffix": s, "categories": list(c)} for s, c in explanation.listings],
        "list_entries": [{"entry": e, "list": source} for e, source in explanation.list_entries],
        "blocked_categories": list(explanation.blocked_categories),
        "windows": [
            {"schedule": w.schedule, "label": w.label, "start": w.start.timestamp(), "end": w.end.timestamp()}
            for w in explanation.windows
        ],
        "decision": {
            "action": decision.action,
            "reason": decision.reason,
            "category": decision.category,
            "detail": decision.detail,
            "schedule_window": decision.schedule_window,
            "rewrite_target": decision.rewrite_target,
        },
        "lines": explanation_lines(explanation, zone),
    }


@require(*CONSOLE_ROLES)
async def check(request: web.Request) -> web.StreamResponse:
    zone = zone_of(request)
    query = request.query
    groups = group_picker(request)
    form = {
        "name": query.get("name", ""),
        "group": query.get("group", "") or (groups[0] if groups else ""),
        "client": query.get("client", ""),
        "where": query.get("where", "school"),
        "at": "",
    }
    errors: list[str] = []
    explanation = None
    if "name" in query:
        try:
            form["at"] = local_input_value(parse_time(query.get("at"), zone), zone)
            explanation = explain_for(request, query)
        except ValueError as exc:
            errors.append(str(exc))
    return await render(
        request,
        "check.html",
        {
            "form": form,
            "groups": groups,
            "explanation": explanation,
            "lines": explanation_lines(
                explanation, zone, control_of(request).listing_sources(explanation),
                category_day(control_of(request), explanation, zone),
            ) if explanation else [],  # fmt: skip
            "errors": errors,
        },
        status=400 if errors else 200,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/check", check, name="check")
    add_nav(app, NavItem("/check", "Check a domain", CONSOLE_ROLES, "nav-check"))
