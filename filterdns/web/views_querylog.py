"""Query log search: by group, client, pupil, domain, verdict and time, newest first, a page at a
time (keyset cursors from the store, so page 50 is as quick as page 1). Teachers only ever
see their own groups' queries, and only admins see lookups in the categories safeguarding
alerts watch (who looked up self-harm sites is for the safeguarding lead)."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from aiohttp import web

from filterdns.alerts.rules import watched_categories
from filterdns.config.model import Config
from filterdns.store import EventFilter, User
from filterdns.web.auth import group_picker, require, scope_filter, sees_safeguarding
from filterdns.web.common import (
    CONSOLE_ROLES,
    VERDICTS,
    NavItem,
    add_nav,
    control_of,
    next_page_query,
    parse_time,
    render,
    search_form,
    user_of,
    zone_of,
)
from filterdns.web.domain_input import name_to_look_up

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def event_filter(user: User, query: Mapping[str, str], zone: ZoneInfo, config: Config) -> EventFilter:
    """The search a form or API call asks for, within what ``user`` may see: their groups,
    and lookups in the categories safeguarding alerts watch only for those who see alerts.
    Raises ValueError for bad input and 403 for a group outside the user's scope."""
    verdict = query.get("verdict", "").strip()
    if verdict and verdict not in VERDICTS:
        raise ValueError(f"verdict is one of {', '.join(VERDICTS)}")
    since = parse_time(query.get("since"), zone)
    until = parse_time(query.get("until"), zone)
    if since is not None and until is not None and since >= until:
        raise ValueError("the start of the time range must be before its end")
    return EventFilter(
        groups=scope_filter(user, query.get("group", "").strip() or None, [g.name for g in config.policy.groups]),
        client=query.get("client", "").strip() or None,
        pupil=query.get("pupil", "").strip() or None,
        domain=name_to_look_up(query.get("domain", "")) or None,
        name_contains=query.get("contains", "").strip() or None,
        verdict=verdict or None,
        category=query.get("category", "").strip() or None,
        since=since,
        until=until,
        hide_categories=() if sees_safeguarding(user) else tuple(sorted(watched_categories(config.policy.alert_rules))),
    )


def page_size(query: Mapping[str, str], default: int = PAGE_SIZE) -> int:
    try:
        size = int(query.get("limit", default))
    except ValueError:
        raise ValueError("limit is a whole number") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"limit is between 1 and {MAX_PAGE_SIZE}")
    return size


@require(*CONSOLE_ROLES)
async def querylog(request: web.Request) -> web.StreamResponse:
    zone = zone_of(request)
    query = request.query
    errors: list[str] = []
    page = None
    try:
        where = event_filter(user_of(request), query, zone, control_of(request).config)
        page = await control_of(request).store.search_events(where, limit=PAGE_SIZE, cursor=query.get("cursor") or None)
    except ValueError as exc:
        errors.append(str(exc))
    form = search_form(query, ("group", "client", "pupil", "domain", "verdict"), zone)
    older = next_page_query(form, cursor=page.next_cursor) if page and page.next_cursor else None
    return await render(
        request,
        "querylog.html",
        {
            "form": form,
            "groups": group_picker(request),
            "verdicts": VERDICTS,
            "rows": page.rows if page else [],
            "older": older,
            "paged": bool(query.get("cursor")),
            "newest": next_page_query(form),
            "errors": errors,
        },
        status=400 if errors else 200,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/querylog", querylog, name="querylog")
    add_nav(app, NavItem("/querylog", "Query log", CONSOLE_ROLES, "nav-querylog"))
