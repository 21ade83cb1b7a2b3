"""The staff console as an aiohttp application, and starting it next to the DNS service.

``create_app`` builds the application around a ``Control`` (the only way in to the
resolver); ``start_web`` serves it, optionally over TLS, and prints a one-time setup link
when no admin account exists yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from filterdns import i18n
from filterdns.accounts.passwords import Passwords
from filterdns.names import display_domain
from filterdns.reports.guidance import category_guidance
from filterdns.store import StoreError
from filterdns.ui import STATIC_DIR, TEMPLATES_DIR
from filterdns.web import (
    api,
    auth,
    views_alerts,
    views_audit,
    views_check,
    views_compliance,
    views_dashboard,
    views_digest,
    views_digest_preview,
    views_encrypted,
    views_family,
    views_fixes,
    views_home,
    views_lists,
    views_outbox,
    views_overrides,
    views_parents,
    views_policy,
    views_querylog,
    views_reports,
    views_reviews,
    views_users,
)
from filterdns.web.auth import PASSWORDS, SETUP, THROTTLE, LoginThrottle, SetupToken
from filterdns.web.common import (
    CONTROL,
    NAV,
    SETTINGS,
    WebSettings,
    format_time,
    is_api,
    public,
    render,
    school_zone,
)
from filterdns.web.security import SESSIONS, Sessions, add_security_headers, guard

if TYPE_CHECKING:
    from filterdns.server.control import Control

log = logging.getLogger("filterdns.web")
access_log = logging.getLogger("filterdns.web.access")

# Each adds its routes and its navigation entry, in the order the navigation shows them.
PAGES: tuple[Callable[[web.Application], None], ...] = (
    views_dashboard.setup,
    views_check.setup,
    views_overrides.setup,
    views_reviews.setup,
    views_fixes.setup,
    views_alerts.setup,
    views_policy.setup,
    views_lists.setup,
    views_querylog.setup,
    views_audit.setup,
    views_outbox.setup,
    views_users.setup,
    views_family.setup,
    views_reports.setup,
    views_parents.setup,
    views_digest.setup,
    views_digest_preview.setup,
    views_compliance.setup,
    views_encrypted.setup,
    views_home.setup,
)

_DEFAULT_MESSAGES = {
    400: "The request was not understood.",
    401: "Please log in.",
    403: "Your account may not do that.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    413: "That request is too large.",
    429: "Too many requests; wait a little.",
}


def create_app(
    control: Control,
    *,
    setup_token: str | None = None,
    secure_cookies: bool = False,
    settings: WebSettings = WebSettings(),
    passwords: Passwords | None = None,
) -> web.Application:
    """The console application. ``setup_token`` enables /setup?token=... for creating the
    first admin; ``secure_cookies`` is for TLS (Secure cookies, HSTS)."""
    settings = dataclasses.replace(settings, secure_cookies=secure_cookies)
    app = web.Application(middlewares=[error_pages, guard], client_max_size=2 * 1024 * 1024)
    app[CONTROL] = control
    app[SETTINGS] = settings
    app[NAV] = []
    app[SESSIONS] = Sessions(app)
    app[PASSWORDS] = passwords or Passwords()
    app[THROTTLE] = LoginThrottle(settings.ip_failures, settings.ip_window_minutes * 60)
    app[SETUP] = SetupToken(setup_token)
    app.on_response_prepare.append(add_security_headers)

    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template: DNS names may hold any byte, "<script>" included
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["localtime"] = lambda ts, pattern="%Y-%m-%d %H:%M:%S": format_time(ts, zone_of_app(app), pattern)
    i18n.install(env)  # the pages families read are translated
    env.filters["category_title"] = lambda name: category_guidance(name).title
    env.filters["display_domain"] = display_domain  # bücher.de, not xn--bcher-kva.de

    app.router.add_static("/static", STATIC_DIR, name="static")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", public(control.metrics.aiohttp_handler()))
    auth.setup_routes(app)
    for page in PAGES:
        page(app)
    api.setup(app)
    return app


def zone_of_app(app: web.Application) -> ZoneInfo:
    return school_zone(app[CONTROL].config)


@public
async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _message(exc: web.HTTPException) -> str:
    """The text a handler gave the exception, or a plain default for its status."""
    text = exc.text or ""
    if not text or text == f"{exc.status}: {exc.reason}":
        return _DEFAULT_MESSAGES.get(exc.status, exc.reason)
    return text


async def _error_response(request: web.Request, status: int, message: str, headers=None) -> web.StreamResponse:
    if is_api(request):
        response: web.StreamResponse = web.json_response({"error": message}, status=status)
    else:
        response = await render(request, "error.html", {"status": status, "message": message}, status=status)
    for name in ("WWW-Authenticate", "Retry-After", "Allow"):
        if headers and name in headers:
            response.headers[name] = headers[name]
    return response


@web.middleware
async def error_pages(request: web.Request, handler) -> web.StreamResponse:
    """Errors as a page (or JSON under /api/), never a traceback; a store outage says so."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await _error_response(request, exc.status, _message(exc), exc.headers)
    except StoreError as exc:
        log.warning("console: the store failed on %s %s: %s", request.method, request.path, exc)
        return await _error_response(
            request, 503, "The database is not available right now. DNS keeps working; the server log has details."
        )
    except Exception:
        log.exception("console: error on %s %s", request.method, request.path)
        return await _error_response(request, 500, "Something went wrong. The server log has the details.")


class AccessLogger(AbstractAccessLogger):
    """Method, path and status only: query strings can hold a setup token or the names
    someone looked up, and neither belongs in a log."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %s %d %.1fms", request.remote, request.method, request.path, response.status, time * 1000
        )


SETUP_CHECK_INTERVAL = 5.0


async def _link_when_no_admin(control: Control, base: str, token: str) -> None:
    """Print the one-time setup link if, and only if, the store says there is no admin. A
    store that cannot be read says nothing about admins: ask it again every few seconds
    until it answers (a restart with a broken store once printed a link that was then
    refused, because an admin existed all along)."""
    waiting = False
    while True:
        try:
            users = await control.store.list_users()
        except StoreError as exc:
            if not waiting:
                log.warning("console: cannot check for an admin account yet (%s); asking again every %.0f s", exc, SETUP_CHECK_INTERVAL)
                waiting = True
            await asyncio.sleep(SETUP_CHECK_INTERVAL)
            continue
        if not any(u.role == "admin" and not u.disabled for u in users):
            # The one secret this service ever logs, on purpose: it is how the first admin is
            # made without a shell, and it stops working once used.
            log.warning("no admin account yet: create one at %s/setup?token=%s (or run `filterdns user add`)", base, token)
        elif waiting:
            log.info("console: the store answers again and has an admin account; no setup link needed")
        return


def tls_context(cert: Path, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def start_web(
    control: Control,
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    setup_token: str | None = None,
    settings: WebSettings = WebSettings(),
) -> web.AppRunner:
    """Serve the console; stop it with ``runner.cleanup()``. ``runner.addresses`` has the
    bound address when ``port`` is 0."""
    context = tls_context(tls_cert, tls_key) if tls_cert else None
    # /setup works only while no admin exists, so a token is harmless until it is printed.
    setup_token = setup_token or secrets.token_urlsafe(24)
    app = create_app(control, setup_token=setup_token, secure_cookies=context is not None, settings=settings)
    checks: list[asyncio.Future] = []

    async def stop_checking(_: web.Application) -> None:
        for check in checks:
            check.cancel()

    app.on_cleanup.append(stop_checking)
    runner = web.AppRunner(app, access_log_class=AccessLogger, access_log=access_log)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=context).start()
    except BaseException:
        await runner.cleanup()
        raise
    scheme = "https" if context else "http"
    bound_host, bound_port = runner.addresses[0][:2]
    base = f"{scheme}://[{bound_host}]:{bound_port}" if ":" in bound_host else f"{scheme}://{bound_host}:{bound_port}"
    log.info("staff console on %s/", base)
    checks.append(asyncio.ensure_future(_link_when_no_admin(control, base, setup_token)))
    # A store that answers at once gets its line before start_web returns.
    await asyncio.wait(checks, timeout=1.0)
    return runner
