"""The console's defences around every request: security headers, sessions, CSRF, and the
coarse role gate. Finer role and group checks live in ``auth.py`` next to the handlers.

Sessions: a random token in a cookie (HttpOnly, SameSite=Strict, Secure and ``__Host-``
under TLS); the store keeps only its SHA-256, so a copy of the database logs nobody in.
A session ends at logout, after ``session_hours`` whatever happens, and after
``idle_minutes`` without a request (the idle clock is kept in memory: the store has no
"touch" operation, so after a restart every session's idle clock starts again).

CSRF: every POST/PUT/PATCH/DELETE must echo the session's CSRF token, as the form field
``csrf_token`` or the header ``X-CSRF-Token``. Before login the token is a random value
in a short-lived cookie ("double submit"), which protects the login and setup forms from
being submitted by another site. Requests with ``Authorization: Bearer`` carry no
cookies, so they cannot be forged by a browser and need no token. Handlers marked
``signed_url_post`` are exempt too: the secret is in their URL (an HMAC ``links.signature``),
which another site cannot know either.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import quote

from aiohttp import web

from filterdns.accounts.passwords import token_hash
from filterdns.accounts.service import Accounts
from filterdns.links import same_secret
from filterdns.store import Session, StoreError, User
from filterdns.web.common import (
    CONTROL,
    PRE_SESSION_CSRF,
    PRINCIPAL,
    SETTINGS,
    Handler,
    Principal,
    WebSettings,
    is_api,
    is_public,
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
API_TOKEN_PREFIX = "fdns_"
# Idle clocks kept before old ones are swept (one entry per live session).
_IDLE_SWEEP_AT = 10_000


def new_api_token() -> str:
    """A bearer token; the prefix lets secret scanners recognise a leaked one."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def signed_url_post(handler: Handler) -> Handler:
    """Exempt a handler's POSTs from the CSRF check, for links that must work from a mail
    without a session or a form: RFC 8058 one-click unsubscribe arrives as a bare POST
    from the mail provider. The handler must verify the ``signature`` in its URL."""
    handler.signed_url_post = True  # type: ignore[attr-defined]
    return handler


def cookie_names(settings: WebSettings) -> tuple[str, str]:
    """(session cookie, pre-session cookie). ``__Host-`` pins a cookie to this host, path /
    and HTTPS, so a sibling host or plain HTTP page cannot plant one."""
    prefix = "__Host-" if settings.secure_cookies else ""
    return prefix + "filterdns_session", prefix + "filterdns_login"


def _set_cookie(response: web.StreamResponse, name: str, value: str, settings: WebSettings) -> None:
    response.set_cookie(
        name, value, path="/", httponly=True, samesite="Strict", secure=settings.secure_cookies or None
    )


class Sessions:
    """Logins, as the store's sessions plus an in-memory idle clock."""

    def __init__(self, app: web.Application):
        self._app = app
        self._last_seen: dict[str, float] = {}
        self.recent = RecentPrincipals()

    @property
    def _settings(self) -> WebSettings:
        return self._app[SETTINGS]

    @property
    def _accounts(self) -> Accounts:
        return Accounts(self._app[CONTROL].store)

    async def start(self, response: web.StreamResponse, user: User, old_token: str | None) -> Session:
        """Log ``user`` in with a fresh token (never reusing one a visitor arrived with, so a
        planted cookie cannot become a login) and end the session they had."""
        if old_token:
            await self.end(old_token)
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = await self._accounts.open_session(
            user.name, token, csrf_token=secrets.token_urlsafe(32), expires=now + self._settings.session_hours * 3600,
            now=now,
        )  # fmt: skip
        self._last_seen[session.token_hash] = now
        session_cookie, pre_session_cookie = cookie_names(self._settings)
        _set_cookie(response, session_cookie, token, self._settings)
        response.del_cookie(pre_session_cookie, path="/")
        return session

    async def find(self, token: str) -> Session | None:
        """The live session for a cookie value; ends it if it has been idle too long."""
        digest = token_hash(token)
        session = await self._app[CONTROL].store.get_session(digest)
        if session is None:
            self._last_seen.pop(digest, None)
            return None
        now = time.time()
        last = self._last_seen.get(digest, now)
        if now - last > self._settings.idle_minutes * 60:
            await self.end(token)
            return None
        self._last_seen[digest] = now
        if len(self._last_seen) > _IDLE_SWEEP_AT:
            self._sweep(now)
        return session

    async def end(self, token: str) -> None:
        self._last_seen.pop(token_hash(token), None)
        self.recent.forget(token_hash(token))
        await self._accounts.close_session(token)

    def _sweep(self, now: float) -> None:
        limit = self._settings.idle_minutes * 60
        self._last_seen = {d: t for d, t in self._last_seen.items() if now - t <= limit}


class RecentPrincipals:
    """Who each session cookie and API token stood for when the store last confirmed it,
    so that a store outage does not lock staff out of the health panel that explains it.

    Used only while the store is down, and only for reading (GET and HEAD): a login the
    store confirmed within ``idle_minutes``, whose session has not expired, is taken from
    memory, and each such request restarts that clock, as the store's idle check would.
    Logging out forgets it at once. Nothing can be changed this way, and nobody new gets in.
    """

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[str, tuple[Principal, float]] = {}  # credential hash -> (who, when)

    def remember(self, digest: str, principal: Principal, now: float) -> None:
        self._known[digest] = (principal, now)
        if len(self._known) > _IDLE_SWEEP_AT:
            self._known = {d: entry for d, entry in self._known.items() if entry[1] >= now - 86_400}

    def forget(self, digest: str) -> None:
        self._known.pop(digest, None)

    def recall(self, digest: str, now: float, idle_limit: float) -> Principal | None:
        known = self._known.get(digest)
        if known is None:
            return None
        principal, seen = known
        if now - seen > idle_limit or (principal.session is not None and principal.session.expires <= now):
            self.forget(digest)
            return None
        self._known[digest] = (principal, now)
        return principal


SESSIONS = web.AppKey("filterdns.sessions", Sessions)


def session_token(request: web.Request) -> str | None:
    return request.cookies.get(cookie_names(request.app[SETTINGS])[0])


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs for every response, including static files,
    redirects and errors, which a middleware would not all see."""
    response.headers.update(SECURITY_HEADERS)
    if request.app[SETTINGS].secure_cookies:
        response.headers["Strict-Transport-Security"] = HSTS
    if not isinstance(request.match_info.route.resource, web.StaticResource):
        # Pages show who visited what: no copy in shared or back-button caches.
        response.headers["Cache-Control"] = "no-store"


def _credential(request: web.Request) -> str | None:
    """The hash of the bearer token or the session cookie the request came with."""
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        return token_hash(bearer.strip())
    token = session_token(request)
    return token_hash(token) if token else None


async def _identify(request: web.Request) -> Principal | None:
    """Who is asking, as the store says; while the store is down, a recent login's reads
    are answered from memory (``RecentPrincipals``) rather than refused."""
    recent = request.app[SESSIONS].recent
    digest = _credential(request)
    reading = request.method in ("GET", "HEAD")
    now = time.time()
    idle_limit = request.app[SETTINGS].idle_minutes * 60
    if digest is not None and reading and not request.app[CONTROL].store_health()["ok"]:
        # Known to be down: asking would only wait out the store's deadline.
        if (principal := recent.recall(digest, now, idle_limit)) is not None:
            return principal
    try:
        principal = await _identify_in_store(request)
    except StoreError:
        if digest is None or not reading or (principal := recent.recall(digest, now, idle_limit)) is None:
            raise
        return principal
    if principal is not None and digest is not None:
        recent.remember(digest, principal, now)
    return principal


async def _identify_in_store(request: web.Request) -> Principal | None:
    """Who is asking: a bearer token wins over a cookie; a bad token is an error, not a
    silent fall-back to the cookie."""
    store = request.app[CONTROL].store
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise _unauthorized(request, "use Authorization: Bearer <token>")
        api_token = await Accounts(store).use_api_token(bearer.strip())
        user = await store.get_user(api_token.user) if api_token else None
        if user is None or user.disabled:
            raise _unauthorized(request, "unknown or revoked API token")
        return Principal(user, None, "token")
    token = session_token(request)
    if not token:
        return None
    session = await request.app[SESSIONS].find(token)
    if session is None:
        return None
    user = await store.get_user(session.user)
    if user is None or user.disabled:
        await request.app[SESSIONS].end(token)
        return None
    return Principal(user, session, "session")


def _unauthorized(request: web.Request, message: str) -> web.HTTPException:
    if is_api(request) or request.headers.get("Authorization"):
        return web.HTTPUnauthorized(text=message, headers={"WWW-Authenticate": "Bearer"})
    target = request.path_qs if request.method == "GET" else "/"
    return web.HTTPSeeOther(f"/login?next={quote(target, safe='/')}")


async def _check_csrf(request: web.Request, principal: Principal | None) -> None:
    if request.method not in UNSAFE_METHODS or (principal and principal.via == "token"):
        return
    if getattr(request.match_info.handler, "signed_url_post", False):
        return
    if principal is not None and principal.session is not None:
        expected = principal.session.csrf_token
    else:
        # Only a token the visitor's browser sent back counts, never one minted just now.
        expected = request.cookies.get(cookie_names(request.app[SETTINGS])[1], "")
    supplied: object = request.headers.get(CSRF_HEADER)
    if supplied is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        supplied = (await request.post()).get(CSRF_FIELD)
    if not same_secret(supplied, expected):
        raise web.HTTPForbidden(
            text="This form has expired or did not come from this console (missing or wrong CSRF token). "
            "Reload the page and try again."
        )


def _check_role(request: web.Request, principal: Principal) -> None:
    """The coarse gate every route passes: parents have only their family pages (sent there
    from the console's front page), and viewers never change anything. Handlers check the
    finer rules (``auth.require``)."""
    role = principal.user.role
    if role == "parent":
        if request.method == "GET" and request.path == "/":
            raise web.HTTPSeeOther("/family")
        raise web.HTTPForbidden(text="Parent accounts have no access to the staff console.")
    if role == "viewer" and request.method in UNSAFE_METHODS:
        raise web.HTTPForbidden(text="Viewer accounts can look but not change anything.")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identify the caller, then enforce login, CSRF and the role gate, in that order."""
    principal = await _identify(request)
    public = is_public(request)
    if principal is None and not public:
        raise _unauthorized(request, "log in first (or send an API token)")
    await _check_csrf(request, principal)
    if principal is not None:
        request[PRINCIPAL] = principal
        if not public:
            _check_role(request, principal)
        return await handler(request)
    # A logged-out visitor on a public page: give their forms a token to echo.
    settings = request.app[SETTINGS]
    pre_session_cookie = cookie_names(settings)[1]
    known = request.cookies.get(pre_session_cookie)
    request[PRE_SESSION_CSRF] = known or secrets.token_urlsafe(32)
    response = await handler(request)
    if not known and response.content_type == "text/html":  # only pages carry forms
        _set_cookie(response, pre_session_cookie, request[PRE_SESSION_CSRF], settings)
    return response
