"""Time-boxed overrides, the teacher's one-click control: "Allow [video] for [7B] for [this
lesson]". The form has sensible defaults so granting one is a single press; active
overrides are listed with the time left and a Revoke button, and console.js removes a row
the moment it expires (without scripts, the next page load does).

Control validates and applies (known group and category, 1 to 1440 minutes, protected
categories never allowed) and writes the audit log; this module decides who may ask."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from filterdns.names import typed_domain
from filterdns.store import Override, User
from filterdns.store.policy import OverrideKind
from filterdns.web.auth import can_change_group, can_see_group, group_picker, require
from filterdns.web.common import (
    CONSOLE_ROLES,
    NavItem,
    add_nav,
    control_of,
    minutes_left,
    render,
    user_of,
)
from filterdns.web.domain_input import took_note, took_query

CHANGE_ROLES = ("admin", "teacher")


@dataclass(frozen=True, slots=True)
class Duration:
    minutes: int
    label: str


DURATIONS = (
    Duration(15, "15 minutes"),
    Duration(30, "30 minutes"),
    Duration(50, "this lesson (50 minutes)"),
    Duration(100, "a double lesson (100 minutes)"),
    Duration(240, "4 hours"),
    Duration(1440, "24 hours"),
)
DEFAULT_MINUTES = 50
NOTICES = {"added": "Override added; it applies now.", "revoked": "Override revoked."}


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    group: str
    kind: OverrideKind
    domain: str
    category: str
    minutes: int


def parse_override(data: Mapping[str, object]) -> OverrideRequest:
    """The override a form or API body asks for. A typed domain wins over the category
    picked in the select box, so the form needs no extra "category or domain" switch."""
    typed = str(data.get("domain") or "").strip()
    domain = typed_domain(typed).name if typed else ""
    category = "" if domain else str(data.get("category") or "").strip()
    given = data.get("minutes")
    try:
        minutes = DEFAULT_MINUTES if given is None or given == "" else int(str(given))
    except ValueError:
        raise ValueError("minutes is a whole number") from None
    kind = data.get("kind") or "allow"
    if kind not in ("allow", "block"):
        raise ValueError("an override allows or blocks")
    if not domain and not category:
        raise ValueError("pick a category or type a domain")
    return OverrideRequest(str(data.get("group") or "").strip(), cast(OverrideKind, kind), domain, category, minutes)


def visible_overrides(user: User, overrides: list[Override]) -> list[Override]:
    return [o for o in overrides if can_see_group(user, o.group)]


async def grant(request: web.Request, wanted: OverrideRequest) -> Override:
    """Add an override if the user may change that group (403 otherwise)."""
    user = user_of(request)
    if not can_change_group(user, wanted.group):
        raise web.HTTPForbidden(text="You can only add overrides for your own groups.")
    return await control_of(request).add_override(
        wanted.group, wanted.kind, domain=wanted.domain, category=wanted.category,
        minutes=wanted.minutes, author=user.name,
    )  # fmt: skip


async def revoke(request: web.Request, override_id: int) -> None:
    """Revoke an override the user may change; 404 for one they may not even see."""
    user = user_of(request)
    control = control_of(request)
    override = next((o for o in control.active_overrides() if o.id == override_id), None)
    if override is None or not can_see_group(user, override.group):
        raise web.HTTPNotFound(text="No such active override (it may have expired).")
    if not can_change_group(user, override.group):
        raise web.HTTPForbidden(text="You can only revoke overrides for your own groups.")
    await control.revoke_override(override_id, author=user.name)


def override_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such override.") from None


async def _page(request: web.Request, *, form: Mapping[str, object], errors: list[str], status: int = 200):
    control = control_of(request)
    user = user_of(request)
    now = time.time()
    overrides = [
        {"override": o, "minutes_left": minutes_left(o.expires_at, now)}
        for o in visible_overrides(user, control.active_overrides())
    ]
    groups = [g for g in group_picker(request) if can_change_group(user, g)]
    return await render(
        request,
        "overrides.html",
        {
            "can_change": user.role in CHANGE_ROLES,
            "groups": groups,
            "categories": control.categories(),
            "protected": control.config.policy.protected_categories,
            "durations": DURATIONS,
            "form": form,
            "overrides": overrides,
            "errors": errors,
            "notice": " ".join(filter(None, (NOTICES.get(request.query.get("done", ""), ""), took_note(request)))),
        },
        status=status,
    )


def _form(request: web.Request, sent: Mapping[str, object] | None = None) -> dict[str, object]:
    """The form's values: what was sent, over the defaults of a fresh form."""
    categories = control_of(request).categories()
    fresh = {"kind": "allow", "group": "", "category": categories[0].name if categories else "", "domain": "",
             "minutes": DEFAULT_MINUTES}  # fmt: skip
    return {**fresh, **(sent or {})}


@require(*CONSOLE_ROLES)
async def overrides_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, form=_form(request), errors=[])


@require(*CHANGE_ROLES)
async def add_override(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        await grant(request, parse_override(form))
    except ValueError as exc:
        return await _page(request, form=_form(request, form), errors=[str(exc)], status=422)
    raise web.HTTPSeeOther(f"/overrides?done=added{took_query(request, form)}")


@require(*CHANGE_ROLES)
async def revoke_override(request: web.Request) -> web.StreamResponse:
    await revoke(request, override_id(request))
    raise web.HTTPSeeOther("/overrides?done=revoked")


def setup(app: web.Application) -> None:
    app.router.add_get("/overrides", overrides_page, name="overrides")
    app.router.add_post("/overrides", add_override)
    app.router.add_post("/overrides/{id}/revoke", revoke_override)
    add_nav(app, NavItem("/overrides", "Overrides", CONSOLE_ROLES, "nav-overrides"))
