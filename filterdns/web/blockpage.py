"""The block page: what a pupil's browser shows when a blocked name was answered with the
block page's address (block mode ``blockpage``).

It is a separate, tiny aiohttp app on its own address (``blocking.page_ipv4``/``page_ipv6``,
port 80), because the browser arrives there believing it is talking to the blocked site: any
Host and any path must get the page. The Host header names the site, so it is attacker-chosen
text; every value reaches the page only through Jinja2's autoescaping.

The page says in plain words what was blocked and why (``Control.explain`` for the asking
address), naming the group and the category as people know them (the group's description,
the category's title and description), in the browser's language (``Accept-Language``,
else the school's, ``reports.language``), and offers a review request, which staff decide in the console. Requests are
rate-limited per client address so that a pupil (or a page making their browser post) cannot
flood the review queue.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from filterdns import i18n
from filterdns.config.model import Config
from filterdns.i18n import N_
from filterdns.policy.explanation import Explanation
from filterdns.reports.guidance import category_guidance
from filterdns.reports.help import COUNTRY_HELP
from filterdns.reports.weekly import find_group
from filterdns.ui import STATIC_DIR, TEMPLATES_DIR
from filterdns.web.security import SECURITY_HEADERS as CONSOLE_HEADERS

if TYPE_CHECKING:
    from filterdns.server.control import Control

log = logging.getLogger("filterdns.blockpage")

STYLESHEET_PATH = "/_filterdns/blockpage.css"
MAX_REASON = 500
MAX_NAME = 253
REVIEWS_PER_CLIENT = 5
REVIEW_PERIOD = 3600.0

# The console's headers, with a stricter policy: the page has no script at all. no-store
# keeps a browser from showing a stale block page once the site is allowed again.
SECURITY_HEADERS = {
    **CONSOLE_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
}

# Message ids; a locked category's text is its country's (``CountryHelp.illegal``).
_REASON_WORDS = {
    "category": N_("It is in the category “%(category)s”, which is blocked for %(group)s at all times."),
    "scheduled-category": N_("It is in the category “%(category)s”, which is blocked for %(group)s during %(window)s."),
    "deny-list": N_("The school has put it on its list of blocked sites."),
    "bypass-protection": N_("It is used to get round the school's filter."),
    "override": N_("A member of staff has blocked it for %(group)s for a while."),
}
NO_SITE = N_("There is no site to review here.")
NO_REASON = N_("Please say why you need this site.")
TOO_LONG = N_("Please keep the reason under %(n)s characters.")
TOO_MANY = N_("You have sent several review requests recently. Please wait an hour, or ask a teacher.")
CANNOT_REVIEW = N_("This address cannot be reviewed.")
SET_TIMES = N_("set times")


class RateLimiter:
    """At most ``limit`` events per ``period`` seconds per key (a sliding window), keeping at
    most ``max_keys`` keys so that many addresses cannot grow it without bound."""

    def __init__(
        self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ):
        self.limit, self.period, self._clock, self._max_keys = limit, period, clock, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        """Count one event for ``key`` if it is within the limit; False (not counted) if not."""
        now = self._clock()
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self.period:
            events.popleft()
        allowed = len(events) < self.limit
        if allowed:
            events.append(now)
        self._events[key] = events  # most recently used last
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)
        return allowed


def site_name(host_header: str) -> str:
    """The name the browser asked for, from the Host header: without the port, lower case,
    no trailing dot, at most a DNS name's length. Not otherwise trusted or checked."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    else:
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit():
            host = name
    return host.lower().rstrip(".")[:MAX_NAME]


def client_address(request: web.Request) -> str:
    """The asking device's address as the policy knows it: a listener on ``[::]`` reports
    IPv4 clients as ``::ffff:10.0.7.5``, which no IPv4 group network would contain."""
    remote = request.remote or ""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _is_address(name: str) -> bool:
    """True for an IP literal: someone opened the block page's own address, not a site."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def describe(explanation: Explanation, config: Config, translator: i18n.Translator) -> dict[str, Any]:
    """The facts of an explanation that the page shows, as plain words in the reader's
    language: the group by its description (the school's words), the category by its
    title, never by their keys."""
    decision = explanation.decision
    category = decision.category
    window = decision.schedule_window
    schedule = next((w.schedule for w in explanation.windows if w.label == window), "") if window else ""
    when = f"{translator.gettext(schedule)} ({window})" if schedule else window or translator.gettext(SET_TIMES)
    group = find_group(config, explanation.group)
    group_name = (group.description if group else "") or explanation.group
    title = translator.gettext(category_guidance(category).title) if category else ""
    description = explanation.descriptions.get(category, "") if category else ""
    if decision.reason == "locked":
        why = translator.gettext(COUNTRY_HELP[config.node.reports.language].illegal)
    elif decision.reason in _REASON_WORDS:
        why = translator.gettext(_REASON_WORDS[decision.reason]) % {"category": title, "group": group_name, "window": when}
    else:
        why = ""
    return {
        "blocked": decision.action == "block",
        "locked": decision.reason == "locked",
        "group": group_name,
        "category": title,
        "category_description": translator.gettext(description) if description else "",
        "window": when if window else "",
        "why": why,
    }


class _BlockPage:
    """The request handlers, with the control facade and the per-client limiter."""

    def __init__(self, control: Control, templates: jinja2.Environment, limiter: RateLimiter):
        self.control, self.templates, self.limiter = control, templates, limiter

    def _render(self, template: str, status: int, **context: Any) -> web.Response:
        country = COUNTRY_HELP[self.control.config.node.reports.language]
        values = {
            "stylesheet": STYLESHEET_PATH, "max_reason": MAX_REASON, "reason": "", "problem": "",
            "hotlines": country.hotlines,
        }  # fmt: skip
        values.update(context)
        html = self.templates.get_template(template).render(values)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def _context(self, request: web.Request) -> dict[str, Any]:
        name = site_name(request.headers.get("Host", ""))
        config = self.control.config
        school = i18n.language(config.node.reports.language)
        translator = i18n.Translator(i18n.negotiate(request.headers.get("Accept-Language"), school))
        context: dict[str, Any] = {
            "name": name, "is_site": bool(name) and not _is_address(name), "facts": None, "i18n": translator,
        }  # fmt: skip
        if context["is_site"]:
            try:
                context["facts"] = describe(self.control.explain(name, client=client_address(request)), config, translator)
            except ValueError as error:  # an address the engine cannot place, a broken name
                log.debug("block page cannot explain %r for %s: %s", name, request.remote, error)
        return context

    async def show(self, request: web.Request) -> web.Response:
        return self._render("blocked.html", 403, **self._context(request))

    async def request_review(self, request: web.Request) -> web.Response:
        context = self._context(request)
        form = await request.post()
        reason = str(form.get("reason", "")).strip()
        client = client_address(request)
        translator: i18n.Translator = context["i18n"]
        problem = ""
        if not context["is_site"]:
            problem = translator.gettext(NO_SITE)
        elif not reason:
            problem = translator.gettext(NO_REASON)
        elif len(reason) > MAX_REASON:
            problem = translator.gettext(TOO_LONG) % {"n": MAX_REASON}
        if problem:
            return self._render("blocked.html", 400, reason=reason[:MAX_REASON], problem=problem, **context)
        if not self.limiter.allow(client):
            return self._render("blocked.html", 429, reason=reason, problem=translator.gettext(TOO_MANY), **context)
        try:
            await self.control.request_review(context["name"], client, reason)
        except ValueError:
            return self._render("blocked.html", 400, problem=translator.gettext(CANNOT_REVIEW), **context)
        return self._render("thanks.html", 200, **context)

    async def stylesheet(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "blockpage.css")


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, errors and the stylesheet included."""
    response.headers.update(SECURITY_HEADERS)


def create_blockpage_app(
    control: Control, *, limiter: RateLimiter | None = None, templates_dir: Path = TEMPLATES_DIR / "blockpage"
) -> web.Application:
    """The block page app: ``GET`` anything shows the page, ``POST`` anything sends a review
    request for the Host's name (the form posts back to the page it is on)."""
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir), autoescape=True, undefined=jinja2.StrictUndefined
    )
    i18n.install(templates)
    page = _BlockPage(control, templates, limiter or RateLimiter(REVIEWS_PER_CLIENT, REVIEW_PERIOD))
    app = web.Application(client_max_size=16 * 1024)
    app.on_response_prepare.append(_add_security_headers)
    app.router.add_get(STYLESHEET_PATH, page.stylesheet)
    app.router.add_get("/{path:.*}", page.show)
    app.router.add_post("/{path:.*}", page.request_review)
    return app


async def start_blockpage(control: Control, host: str, port: int = 80) -> web.AppRunner:
    """Serve the block page on ``host:port``; stop it with ``await runner.cleanup()``.
    ``runner.addresses`` gives the bound address (useful with port 0)."""
    runner = web.AppRunner(create_blockpage_app(control), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
