"""The audit log: who changed what, who logged in or failed to. Admins and viewers only
(it names every account and address)."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from aiohttp import web

from filterdns.store import AuditFilter
from filterdns.web.auth import require
from filterdns.web.common import (
    NavItem,
    add_nav,
    control_of,
    next_page_query,
    parse_time,
    render,
    search_form,
    zone_of,
)

AUDIT_ROLES = ("admin", "viewer")
PAGE_SIZE = 50


def audit_filter(query: Mapping[str, str], zone: ZoneInfo) -> AuditFilter:
    """The filter a form or API call asks for; ValueError for bad input."""
    return AuditFilter(
        actor=query.get("actor", "").strip() or None,
        action=query.get("action", "").strip() or None,
        target=query.get("target", "").strip() or None,
        since=parse_time(query.get("since"), zone),
        until=parse_time(query.get("until"), zone),
    )


def before_id(query: Mapping[str, str]) -> int | None:
    text = query.get("before", "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError("before is an entry number") from None


@require(*AUDIT_ROLES)
async def audit_page(request: web.Request) -> web.StreamResponse:
    zone = zone_of(request)
    query = request.query
    errors: list[str] = []
    entries = []
    try:
        entries = await control_of(request).store.list_audit(
            audit_filter(query, zone), limit=PAGE_SIZE + 1, before_id=before_id(query)
        )
    except ValueError as exc:
        errors.append(str(exc))
    form = search_form(query, ("actor", "action", "target"), zone)
    older = None
    if len(entries) > PAGE_SIZE:
        del entries[PAGE_SIZE:]
        older = next_page_query(form, before=entries[-1].id)
    return await render(
        request,
        "audit.html",
        {
            "form": form,
            "entries": entries,
            "older": older,
            "paged": "before" in query,
            "newest": next_page_query(form),
            "errors": errors,
        },
        status=400 if errors else 200,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/audit", audit_page, name="audit")
    add_nav(app, NavItem("/audit", "Audit log", AUDIT_ROLES, "nav-audit"))
