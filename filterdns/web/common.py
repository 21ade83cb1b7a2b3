"""What every part of the console shares: the application and request keys, the settings,
the navigation registry, rendering, and reading times and groups from forms.

Views never reach the resolver except through the ``Control`` stored under ``CONTROL``.
They read the database through ``control.store`` but change it only through ``Control``
or a domain service (``accounts_of``), which audit what they do.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from filterdns.accounts.service import Accounts
from filterdns.config.model import Config, WebSettings
from filterdns.store import Session, StoreError, User

if TYPE_CHECKING:
    from filterdns.server.control import Control

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Roles that may use the console pages at all; parents get reports in a later release.
CONSOLE_ROLES = ("admin", "teacher", "viewer")
VERDICTS = ("allowed", "blocked", "rewritten", "error")


@dataclass(frozen=True, slots=True)
class NavItem:
    """One link in the navigation bar, shown only to ``roles``; ``count``, when given,
    says what number to show next to it (open alerts...; 0 shows none)."""

    path: str
    label: str
    roles: tuple[str, ...]
    id: str
    count: Callable[[web.Request], Awaitable[int]] | None = None


@dataclass(slots=True)
class Principal:
    """Who makes this request: the user, and whether they came with a session cookie (the
    console) or a bearer token (automation, exempt from CSRF since it sends no cookie)."""

    user: User
    session: Session | None
    via: str  # "session" or "token"


CONTROL: web.AppKey[Control] = web.AppKey("filterdns.control")

SETTINGS = web.AppKey("filterdns.web_settings", WebSettings)
NAV: web.AppKey[list[NavItem]] = web.AppKey("filterdns.nav")
PRINCIPAL = web.RequestKey("filterdns.principal", Principal)
# The token a logged-out visitor's form must echo (login and setup forms).
PRE_SESSION_CSRF = web.RequestKey("filterdns.pre_session_csrf", str)


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without logging in (login, setup, health, metrics).
    CSRF checks still apply to its unsafe methods."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


def is_public(request: web.Request) -> bool:
    route = request.match_info.route
    return isinstance(route.resource, web.StaticResource) or getattr(request.match_info.handler, "public", False)


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def control_of(request: web.Request) -> Control:
    return request.app[CONTROL]


def accounts_of(request: web.Request) -> Accounts:
    """The service every change to an account goes through (views only read the store)."""
    return Accounts(control_of(request).store)


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def user_of(request: web.Request) -> User:
    """The logged-in user; only called by handlers behind the login check."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise web.HTTPUnauthorized(text="log in first")
    return principal.user


def add_nav(app: web.Application, item: NavItem) -> None:
    app[NAV].append(item)


def zone_of(request: web.Request) -> ZoneInfo:
    return school_zone(control_of(request).config)


def school_zone(config: Config) -> ZoneInfo:
    """The zone staff read times in: the policy's ``timezone``; when that was left at UTC
    but the schedules all keep one other zone, that one, so that the query log, the Check
    page and the timetable tell the same clock the school's lessons run by."""
    zone = config.policy.timezone
    schedule_zones = {s.timezone for s in config.policy.schedules}
    if zone == "UTC" and len(schedule_zones) == 1:
        zone = schedule_zones.pop()
    return ZoneInfo(zone)


def redirect(location: str) -> web.Response:
    """A 303 "see other" as a plain response, for handlers that set cookies on it (a raised
    HTTPException is a deprecated way to carry a response's cookies)."""
    return web.Response(status=303, headers={"Location": location})


async def base_context(request: web.Request) -> dict[str, Any]:
    """Variables base.html needs on every page, including error pages."""
    principal = principal_of(request)
    role = principal.user.role if principal else None
    csrf = principal.session.csrf_token if principal and principal.session else request.get(PRE_SESSION_CSRF, "")
    nav = [item for item in request.app[NAV] if role in item.roles]
    return {
        "user": principal.user if principal else None,
        "nav": nav,
        "nav_counts": await nav_counts(request, nav),
        "csrf_token": csrf,
        "current_path": request.path,
    }


async def nav_counts(request: web.Request, items: Iterable[NavItem]) -> dict[str, int]:
    """The numbers next to navigation links, by link id. A store outage just leaves them
    out: error pages (the store's own included) render the navigation too."""
    counts: dict[str, int] = {}
    if not request.app[CONTROL].store_health()["ok"]:  # asking would wait out the store's deadline
        return counts
    for item in items:
        if item.count is not None:
            try:
                counts[item.id] = await item.count(request)
            except StoreError:
                pass
    return counts


async def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """Render a page template with the base context merged in."""
    merged = await base_context(request)
    merged.update(context)
    return aiohttp_jinja2.render_template(template, request, merged, status=status)


# --- times --------------------------------------------------------------------------------


def parse_time(text: str | None, zone: ZoneInfo) -> float | None:
    """A time typed in a form or passed to the API: empty (None), unix seconds, or ISO 8601
    (``2026-11-23T10:00`` from a datetime-local field is in ``zone``)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
        raise ValueError(f"'{text}' is not a time")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a time such as 2026-11-23T10:00") from None
    return (when if when.tzinfo else when.replace(tzinfo=zone)).timestamp()


def format_time(timestamp: float | None, zone: ZoneInfo, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, timezone.utc).astimezone(zone).strftime(pattern)


def local_input_value(timestamp: float | None, zone: ZoneInfo) -> str:
    """A time as a datetime-local field shows it."""
    return format_time(timestamp, zone, "%Y-%m-%dT%H:%M")


def search_form(query: Mapping[str, str], fields: Iterable[str], zone: ZoneInfo) -> dict[str, str]:
    """A search form's values as submitted, with ``since``/``until`` as a datetime-local
    field shows them (blank if they did not parse: the page reports that separately)."""
    form = {key: query.get(key, "") for key in fields}
    for key in ("since", "until"):
        try:
            form[key] = local_input_value(parse_time(query.get(key), zone), zone)
        except ValueError:
            form[key] = ""
    return form


def next_page_query(form: Mapping[str, str], **position: object) -> dict[str, object]:
    """The query string of the following page: the non-empty filters and its position."""
    return {**{key: value for key, value in form.items() if value}, **position}


def minutes_left(expires_at: float, now: float) -> int:
    return max(0, math.ceil((expires_at - now) / 60))


# --- groups ---------------------------------------------------------------------------------


def all_group_names(control: Control) -> list[str]:
    """Every group with a policy: the configured ones and the default group."""
    names = [group.name for group in control.groups()]
    default = control.config.policy.default_group
    return names if default in names else [*names, default]


@dataclass(slots=True)
class FormErrors:
    """Problems with a submitted form, shown next to it."""

    messages: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)
