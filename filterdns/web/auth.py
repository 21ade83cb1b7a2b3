"""Accounts: passwords, login and logout, the first-admin setup page, and the role rules.

Passwords are hashed with argon2id (``accounts.passwords``); a stored hash made with older
parameters is replaced at the next good login.

Guessing is slowed three ways: an account locks for ``lock_minutes`` after ``lock_after``
failures in a row (counted in the store, so every node sees them); an address with too
many failures in a window is told to wait (counted in memory); and an unknown user name
costs as much time as a known one, so timing does not reveal which names exist. Every
failure is audited as ``login.failed`` with the name tried and the address, never the
password.

Both counts are taken *before* the password is checked (reserve, then settle: a right
password takes its count back). Checking first would let a burst of parallel guesses all
pass the "locked?" and "too many?" tests while their hashes are still being computed.
"""

from __future__ import annotations

import functools
import re
import time
from collections import deque
from collections.abc import Callable, Sequence

from aiohttp import web
from yarl import URL

from filterdns.accounts.passwords import Passwords, token_hash
from filterdns.accounts.rules import password_problems, user_name_problem
from filterdns.links import same_secret
from filterdns.policy.home import is_home
from filterdns.store import Conflict, User
from filterdns.web.common import (
    CONTROL,
    SETTINGS,
    FormErrors,
    Handler,
    accounts_of,
    all_group_names,
    control_of,
    principal_of,
    public,
    redirect,
    render,
    user_of,
)
from filterdns.web.security import SESSIONS, cookie_names, session_token


class LoginThrottle:
    """Login attempts per client address in a sliding window, in memory. An attempt is
    reserved before its password is checked and forgiven only if the password was right,
    so a burst of parallel attempts is held to ``limit`` like a sequence would be."""

    def __init__(self, limit: int, window_seconds: float, max_addresses: int = 10_000):
        self.limit = limit
        self.window = window_seconds
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def wait_seconds(self, address: str, now: float) -> float:
        """How long ``address`` must wait before trying again (0: it may try now)."""
        failures = self._failures.get(address)
        if failures is None:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return 0.0
        return failures[0] + self.window - now if len(failures) >= self.limit else 0.0

    def reserve(self, address: str, now: float) -> float:
        """Count an attempt from ``address`` as failed unless it must wait; returns the
        wait (0: the attempt is counted and may go ahead)."""
        wait = self.wait_seconds(address, now)
        if wait > 0:
            return wait
        if address not in self._failures and len(self._failures) >= self.max_addresses:
            # Bounded memory: forget the address whose failures are oldest.
            oldest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[oldest]
        self._failures.setdefault(address, deque(maxlen=self.limit)).append(now)
        return 0.0

    def forgive(self, address: str, reserved_at: float) -> None:
        """Take back the attempt reserved at ``reserved_at``: its password was right."""
        failures = self._failures.get(address)
        if failures is not None and reserved_at in failures:
            failures.remove(reserved_at)
            if not failures:
                del self._failures[address]


class SetupToken:
    """The one-time token that lets the first admin be created from a browser. Only its
    hash is kept; it stops working once used or once any admin exists."""

    def __init__(self, token: str | None):
        self._digest = token_hash(token) if token else ""

    def matches(self, token: object) -> bool:
        if not self._digest or not isinstance(token, str):
            return False
        return same_secret(token_hash(token), self._digest)

    def void(self) -> None:
        self._digest = ""


PASSWORDS = web.AppKey("filterdns.passwords", Passwords)
THROTTLE = web.AppKey("filterdns.login_throttle", LoginThrottle)
SETUP = web.AppKey("filterdns.setup_token", SetupToken)


# --- roles -----------------------------------------------------------------------------------


def require(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator: only users with one of ``roles`` may call this handler (403 otherwise)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            if user_of(request).role not in roles:
                raise web.HTTPForbidden(text="Your account's role may not use this.")
            return await handler(request)

        return checked

    return decorate


# Safeguarding alerts are for the designated safeguarding lead (an admin): so are the
# single lookups they are made of and the mail they send.
SAFEGUARDING_ROLES = ("admin",)


def sees_safeguarding(user: User) -> bool:
    return user.role in SAFEGUARDING_ROLES


def visible_groups(user: User) -> tuple[str, ...] | None:
    """The groups whose data ``user`` may see: ``None`` means all (admins, viewers);
    teachers and parents see their own groups only."""
    return None if user.role in ("admin", "viewer") else tuple(user.groups)


def can_see_group(user: User, group: str) -> bool:
    """What a take-home device did at home (``<group>@home``) is for safeguarding admins
    only (and the child's own parents, on the family pages); the rest by ``visible_groups``."""
    if is_home(group):
        return user.role in SAFEGUARDING_ROLES
    scope = visible_groups(user)
    return scope is None or group in scope


def check_group(user: User, group: str) -> None:
    """403 unless ``user`` may see ``group``."""
    if not can_see_group(user, group):
        raise web.HTTPForbidden(text="That group is not one of yours.")


def can_change_group(user: User, group: str) -> bool:
    """Admins change any group, teachers their own (overrides), nobody else anything."""
    return user.role == "admin" or (user.role == "teacher" and group in user.groups)


def group_picker(request: web.Request) -> list[str]:
    """The groups the current user may pick in a form, in config order."""
    scope = visible_groups(user_of(request))
    names = all_group_names(control_of(request))
    return names if scope is None else [name for name in names if name in scope]


def scope_filter(user: User, requested: str | None, known: Sequence[str] = ()) -> tuple[str, ...] | None:
    """The ``groups`` filter for a store query: the requested group (if the user may see
    it, else 403) or everything the user may see; a viewer's everything is the ``known``
    (configured) groups, without their events at home."""
    if requested:
        check_group(user, requested)
        return (requested,)
    scope = visible_groups(user)
    if scope is None and user.role not in SAFEGUARDING_ROLES:
        return tuple(known)
    return scope


# --- login and logout -----------------------------------------------------------------------


# Browsers drop tabs and newlines anywhere in a URL and read "\\" as "/", so "/\t/evil.example"
# is "//evil.example" to them; a newline would also break the Location header.
_NOT_IN_A_NEXT_PATH = re.compile(r"[\x00-\x20\x7f\\]")
_THIS_ORIGIN = URL("http://this-console.invalid")


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path that, resolved against this site, stays on it
    ("/" otherwise), with no character a browser would drop or reinterpret; non-ASCII is
    percent-encoded, since a Location header is ASCII."""
    if not target or _NOT_IN_A_NEXT_PATH.search(target) or not target.startswith("/") or target.startswith("//"):
        return "/"
    path = URL(target)
    if _THIS_ORIGIN.join(path).origin() != _THIS_ORIGIN:
        return "/"
    return str(path)


async def audit(request: web.Request, actor: str, action: str, target: str = "", **detail: object) -> None:
    await control_of(request).audit(actor, action, target, detail)


@public
async def login_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "login.html", {"next": safe_next(request.query.get("next")), "errors": [], "name": ""})


def _refusal(user: User | None, now: float) -> str:
    """Why ``user`` may not log in whatever the password ("" if they may try)."""
    if user is None:
        return "unknown user"
    if user.disabled:
        return "account disabled"
    if user.is_locked(now):
        return "account locked"
    return ""


@public
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("username", "")).strip()[:100]  # no user name is longer; bounds the audit row
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    client = request.remote or ""
    app = request.app
    settings = app[SETTINGS]
    store = app[CONTROL].store
    accounts = accounts_of(request)
    now = time.time()

    wait = app[THROTTLE].reserve(client, now)
    if wait > 0:
        # Not audited: nothing was checked, and a flood must not fill the audit log.
        message = f"Too many failed logins from this address. Try again in {max(1, round(wait / 60))} min."
        return await render(request, "login.html", {"next": target, "name": name, "errors": [message]}, status=429)

    # The attempt is counted against the account before the (slow) password check, so
    # parallel guesses see each other; a right password settles it below.
    user = await store.get_user(name) if name else None
    reason = _refusal(user, now)
    counted: User | None = None
    if user is not None and not reason:
        counted = await accounts.reserve_login_attempt(
            user.name, now=now, lock_after=settings.lock_after, lock_seconds=settings.lock_minutes * 60
        )
        reason = "account locked" if counted is None else ""
    if user is None or reason:
        await app[PASSWORDS].verify(None, password)  # as slow as a real check: timing tells nothing
    elif not await app[PASSWORDS].verify(user.password_hash, password):
        reason = "account locked now" if counted and counted.is_locked(now) else "wrong password"
    if user is None or reason:
        await audit(request, client, "login.failed", name, client=client, reason=reason)
        # Said after every failure, locked or not: a message only for locked accounts would
        # tell a guesser which names exist.
        message = (
            "Wrong user name or password, or the account is locked for a while after repeated failures. "
            f"A lock ends by itself after {settings.lock_minutes:g} minutes; on the server, "
            "`filterdns user unlock NAME` lifts it at once."
        )
        return await render(request, "login.html", {"next": target, "name": name, "errors": [message]}, status=401)

    app[THROTTLE].forgive(client, now)
    new_hash = await app[PASSWORDS].hash(password) if app[PASSWORDS].needs_rehash(user.password_hash) else None
    await accounts.logged_in(user.name, new_hash=new_hash)
    response = redirect(target)
    await app[SESSIONS].start(response, user, session_token(request))
    await audit(request, user.name, "login", user.name, client=client)
    return response


@public
async def logout(request: web.Request) -> web.StreamResponse:
    token = session_token(request)
    principal = principal_of(request)
    if token:
        await request.app[SESSIONS].end(token)
    if principal is not None and principal.via == "session":
        await audit(request, principal.user.name, "logout", principal.user.name, client=request.remote or "")
    response = redirect("/login")
    response.del_cookie(cookie_names(request.app[SETTINGS])[0], path="/")
    return response


# --- first admin ------------------------------------------------------------------------------


async def admin_exists(request: web.Request) -> bool:
    return any(u.role == "admin" and not u.disabled for u in await control_of(request).store.list_users())


async def _setup_allowed(request: web.Request, token: object) -> bool:
    if not request.app[SETUP].matches(token):
        return False
    if await admin_exists(request):
        request.app[SETUP].void()
        return False
    return True


@public
async def setup_page(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token", "")
    if not await _setup_allowed(request, token):
        raise web.HTTPNotFound(text="This setup link is not valid (any more). Use `filterdns user add` on the server.")
    return await render(request, "setup.html", {"token": token, "name": "", "errors": []})


@public
async def setup(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = form.get("token", "")
    if not await _setup_allowed(request, token):
        raise web.HTTPNotFound(text="This setup link is not valid (any more). Use `filterdns user add` on the server.")
    name = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    errors = check_new_account(name, password, str(form.get("password2", "")))
    user = None
    if not errors:
        try:
            password_hash = await request.app[PASSWORDS].hash(password)
            user = await accounts_of(request).add(
                name, "admin", password_hash, actor="setup", client=request.remote or ""
            )
        except Conflict:
            errors.add(f"there is a user called {name} already")
    if user is None:
        context = {"token": token, "name": name, "errors": errors.messages}
        return await render(request, "setup.html", context, status=422)
    request.app[SETUP].void()
    response = redirect("/")
    await request.app[SESSIONS].start(response, user, session_token(request))
    return response


def check_new_account(name: str, password: str, repeated: str) -> FormErrors:
    """The rules for a new account's name and password, as form errors."""
    errors = FormErrors()
    problem = user_name_problem(name)
    if problem:
        errors.add(problem)
    if password != repeated:
        errors.add("the two passwords differ")
    for problem in password_problems(password, name):
        errors.add(problem)
    return errors


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout, name="logout")
    app.router.add_get("/setup", setup_page, name="setup")
    app.router.add_post("/setup", setup)
