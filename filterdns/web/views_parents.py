"""Families: parent accounts, the weekly class safety report, and shared read-only links.

Who sees what:

* A parent logs in (``/family/login``, first with the one-time link staff gave them) and
  sees the reports of their own class groups only: any other group is a 403.
* Anyone holding a shared link ``/r/<group>/<expiry>/<signature>`` sees that one group's
  reports until the link expires. The signature is HMAC-SHA256 over the group and the
  expiry, keyed with a secret kept in the store (made once, shared by every node);
  rotating the secret revokes every link at once.
* Staff see the same report pages (teachers for their own groups) under ``/reports``;
  admins and teachers of the group make shared links there. Admins manage parent
  accounts one by one or by CSV import under ``/parents``; viewers may look.

The staff gate in ``security.guard`` turns parents away from every non-public route, so
the pages parents use are marked public and check the login here (``family_page``),
applying the gate's other rule too: viewers change nothing.

Parent-facing pages are rendered in the reader's language (``i18n``): the ``lang`` query
parameter, else the parent's saved choice, else the browser's Accept-Language. The staff
pages (/parents, /reports) are English like the rest of the console.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from filterdns import i18n
from filterdns.accounts.parent_csv import CSV_COLUMNS, MAX_CHILD_NAME, child_name, parse_parent_csv
from filterdns.accounts.passwords import NO_PASSWORD, token_hash
from filterdns.accounts.rules import email_problem, password_problems
from filterdns.config.model import GroupConfig
from filterdns.links import LINK_SECRET, link_path, link_secret, link_signature, same_secret
from filterdns.reports.guidance import PERIODS, category_guidance
from filterdns.reports.weekly import (
    ReportSettings,
    WeeklyReport,
    find_group,
    load_report,
    retention_start,
    selectable_weeks,
)
from filterdns.store import Conflict, User
from filterdns.store.base import ParentProfile
from filterdns.web import auth
from filterdns.web.auth import PASSWORDS, audit, can_change_group, can_see_group, require
from filterdns.web.charts import Bar, Series, stacked_bars
from filterdns.web.common import (
    Handler,
    NavItem,
    add_nav,
    all_group_names,
    control_of,
    principal_of,
    public,
    redirect,
    render,
    user_of,
    zone_of,
)
from filterdns.web.security import SESSIONS, UNSAFE_METHODS, session_token

PASSWORD_LINK_DAYS = 14
SHARE_DAYS_DEFAULT = 30
SHARE_DAYS_MAX = 365
STAFF_REPORT_ROLES = ("admin", "teacher", "viewer")
PARENTS_PAGE_ROLES = ("admin", "viewer")
NOTICES = {
    "deleted": "Parent account deleted.",
    "rotated": "Shared report links signed so far no longer work.",
}
# auth.password_problems' messages, translated for parents (the catalogues hold them).
_PASSWORD_MESSAGES = (
    i18n.N_("a password needs at least 12 characters"),
    i18n.N_("a password must not contain the user name"),
    i18n.N_("that password is one of the first an attacker tries"),
)


# --- access ------------------------------------------------------------------------------------


def family_page(*, login: bool) -> Callable[[Handler], Handler]:
    """Decorator for pages families use (see the module docstring): public to the staff
    gate; with ``login``, anyone not logged in is sent to the parents' login page."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            principal = principal_of(request)
            if principal is not None and principal.user.role == "viewer" and request.method in UNSAFE_METHODS:
                raise web.HTTPForbidden(text="Viewer accounts can look but not change anything.")
            if login and principal is None:
                return redirect(f"/family/login?{urlencode({'next': request.path_qs})}")
            return await handler(request)

        return public(checked)

    return decorate


def is_parent(user: User | None) -> bool:
    return user is not None and user.role == "parent"


# --- shared links ----------------------------------------------------------------------------


def absolute(request: web.Request, path: str) -> str:
    return f"{request.url.origin()}{path}"


# --- rendering for families ---------------------------------------------------------------------


async def translator_for(request: web.Request, account: str | None = None) -> i18n.Translator:
    """The language for this request; the saved choice is that of ``account`` (a password
    link's owner) or else of the parent logged in."""
    principal = principal_of(request)
    if account is None and principal is not None and is_parent(principal.user):
        account = principal.user.name
    profile = await control_of(request).store.get_parent_profile(account) if account else None
    saved = profile.language if profile else None
    return i18n.Translator(
        i18n.choose(
            asked=request.query.get("lang"), saved=saved, accept_language=request.headers.get("Accept-Language")
        )
    )


async def family_render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200,
    translator: i18n.Translator | None = None,
) -> web.Response:  # fmt: skip
    """Render a parent-facing page in the reader's language, with the language switcher
    (links to this page with ``lang`` set) and ``link`` (a path keeping a chosen ``lang``)."""
    translator = translator or await translator_for(request)
    asked = i18n.supported(request.query.get("lang"))

    def link(path: str, **params: object) -> str:
        query = {**({"lang": asked.tag} if asked else {}), **{k: v for k, v in params.items() if v not in (None, "")}}
        return f"{path}?{urlencode(query)}" if query else path

    switcher = [(language, str(request.rel_url.update_query(lang=language.tag))) for language in i18n.LANGUAGES]
    merged = {"i18n": translator, "switcher": switcher, "link": link, "request_lang": asked.tag if asked else "", **context}
    return await render(request, template, merged, status=status)


async def family_message(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """A translated page for refusals and dead links (``title``/``message`` are message ids)."""
    return await family_render(request, "parents/message.html", {"title": title, "message": message}, status=status)


def trend_chart(report: WeeklyReport, translator: i18n.Translator) -> Markup:
    """Blocked attempts per week; a masked week draws no bar (its table row says why)."""
    bars = [
        Bar(
            f"{point.week.start.day:02d}/{point.week.start.month:02d}",
            f"{translator.day(point.week.start)} – {translator.day(point.week.end)}",
            {"blocked": point.blocked.value or 0},
        )
        for point in report.trend
    ]
    return stacked_bars(
        bars,
        [Series("blocked", translator.gettext(i18n.N_("Blocked attempts")))],
        title=translator.gettext(i18n.N_("Blocked attempts per week")),
    )


def requested_day(request: web.Request) -> date | None:
    try:
        return date.fromisoformat(request.query.get("week", ""))
    except ValueError:
        return None


async def report_page(
    request: web.Request, group: GroupConfig, path: str, *, status: int = 200, **extra: Any
) -> web.Response:
    """The report of ``group`` for the week asked for (``?week=`` any day of it), at ``path``."""
    control = control_of(request)
    now = time.time()
    report = await load_report(
        control.store,
        control.config,
        group,
        requested_day(request),
        settings=ReportSettings(mask_below=control.config.reports.mask_below),
        now=now,
    )
    zone: ZoneInfo = zone_of(request)
    first, last = selectable_weeks(zone, now, retention_start(control.store, now))
    translator = await translator_for(request)
    context = {
        "report": report,
        "chart": trend_chart(report, translator),
        "path": path,
        "periods": PERIODS,
        "kept_since_day": datetime.fromtimestamp(report.kept_since, zone).date(),
        "week_min": first.start.isoformat(),
        "week_max": last.end.isoformat(),
        "previous_week": report.week.shifted(-1, zone).start.isoformat() if report.week.since > first.since else None,
        "next_week": report.week.shifted(1, zone).start.isoformat() if report.week.since < last.since else None,
        "staff": False,
        "can_share": False,
        "shared_link": None,
        "share_days": SHARE_DAYS_DEFAULT,
        "share_days_max": SHARE_DAYS_MAX,
        **extra,
    }
    return await family_render(request, "parents/report.html", context, status=status, translator=translator)


# --- parents: logging in, first password, home, language ---------------------------------------


@family_page(login=False)
async def family_login_page(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    if principal is not None:
        return redirect("/family")
    return await family_render(
        request, "parents/login.html", {"next": auth.safe_next(request.query.get("next") or "/family"), "error": "", "name": ""}
    )


@family_page(login=False)
async def family_login(request: web.Request) -> web.StreamResponse:
    """The console's own login (throttling, lockout, audit), shown in the parent's language."""
    response = await auth.login(request)
    if response.status == 303:
        return response
    form = await request.post()
    error = (
        i18n.N_("Too many failed logins from this address. Please wait a few minutes and try again.")
        if response.status == 429
        else i18n.N_("Wrong email address or password, or the account is locked for a while after repeated failures.")
    )
    context = {"next": auth.safe_next(str(form.get("next", "")) or "/family"), "error": error, "name": form.get("username", "")}
    return await family_render(request, "parents/login.html", context, status=response.status)


async def _password_link_user(request: web.Request) -> User | None:
    store = control_of(request).store
    name = await store.password_token_user(token_hash(request.match_info["token"]))
    user = await store.get_user(name) if name else None
    return user if user is not None and not user.disabled else None


async def dead_password_link(request: web.Request) -> web.Response:
    return await family_message(
        request, 404, i18n.N_("This link does not work"),
        i18n.N_("It has been used already or has expired. Ask the school for a new one."),
    )  # fmt: skip


@family_page(login=False)
async def welcome_page(request: web.Request) -> web.StreamResponse:
    user = await _password_link_user(request)
    if user is None:
        return await dead_password_link(request)
    translator = await translator_for(request, user.name)
    return await family_render(request, "parents/welcome.html", {"account": user.name, "errors": []}, translator=translator)


@family_page(login=False)
async def welcome(request: web.Request) -> web.StreamResponse:
    """Set the first (or a forgotten) password through a one-time link, then log in."""
    user = await _password_link_user(request)
    if user is None:
        return await dead_password_link(request)
    form = await request.post()
    password = str(form.get("password", ""))
    errors = password_problems(password, user.name)
    if password != form.get("password2", ""):
        errors.insert(0, i18n.N_("the two passwords differ"))
    store = control_of(request).store
    if not errors and await store.use_password_token(token_hash(request.match_info["token"])) != user.name:
        errors.append(i18n.N_("This link has just been used. Ask the school for a new one."))
    if errors:
        translator = await translator_for(request, user.name)
        context = {"account": user.name, "errors": errors}
        return await family_render(request, "parents/welcome.html", context, status=422, translator=translator)
    await store.update_user(user.name, password_hash=await request.app[PASSWORDS].hash(password))
    await store.note_login_success(user.name)
    await store.delete_user_sessions(user.name)
    await audit(request, user.name, "parent.password", user.name, client=request.remote or "")
    response = redirect("/family")
    await request.app[SESSIONS].start(response, user, session_token(request))
    return response


@family_page(login=True)
async def family_home(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    if not is_parent(user):
        return redirect("/reports")
    profile = await control_of(request).store.get_parent_profile(user.name)
    children: dict[str, list[str]] = {}
    for child, group in profile.children if profile else ():
        children.setdefault(group, []).append(child)
    known = set(all_group_names(control_of(request)))
    classes = [(group, children.get(group, [])) for group in user.groups if group in known]
    config = control_of(request).config
    context = {
        "classes": classes,
        "saved_language": profile.language if profile else "",
        "languages": i18n.LANGUAGES,
        "saved": request.query.get("saved", ""),  # "1": the language, "digest": the weekly email
        "digest": profile.digest if profile else True,
        "digest_offered": config.reports.digest and config.mail.enabled,
    }
    return await family_render(request, "parents/home.html", context)


@family_page(login=True)
async def save_language(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    if not is_parent(user):
        raise web.HTTPForbidden(text="Only parent accounts have a language setting here.")
    chosen = str((await request.post()).get("language", ""))
    language = i18n.supported(chosen)
    store = control_of(request).store
    if not await store.set_parent_language(user.name, language.tag if language else ""):
        # An account made on the Users page has no profile yet.
        await store.save_parent_profile(user.name, [])
        await store.set_parent_language(user.name, language.tag if language else "")
    return redirect("/family?saved=1")


# --- the report: parents and staff, and shared links ------------------------------------------


@family_page(login=True)
async def group_report(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    group = find_group(control_of(request).config, request.match_info["group"])
    allowed = group is not None and (group.name in user.groups if is_parent(user) else can_see_group(user, group.name))
    if group is None or not allowed:
        return await family_message(request, 403, i18n.N_("Not one of your classes"), i18n.N_(
            "You can see the reports of your own child's classes only."))
    return await report_page(
        request, group, f"/reports/{quote(group.name, safe='')}",
        staff=not is_parent(user), can_share=_may_share(user, group.name),
    )  # fmt: skip


def _may_share(user: User, group: str) -> bool:
    return user.role == "admin" or (user.role == "teacher" and can_change_group(user, group))


@require("admin", "teacher")
async def share_report(request: web.Request) -> web.StreamResponse:
    """Make a shared link to a group's reports, valid for the days asked for."""
    user = user_of(request)
    control = control_of(request)
    group = find_group(control.config, request.match_info["group"])
    if group is None:
        raise web.HTTPNotFound(text="No such group.")
    if not _may_share(user, group.name):
        raise web.HTTPForbidden(text="That group is not one of yours.")
    path = f"/reports/{quote(group.name, safe='')}"
    try:
        days = int(str((await request.post()).get("days", "")))
    except ValueError:
        days = 0
    if not 1 <= days <= SHARE_DAYS_MAX:
        raise web.HTTPBadRequest(text=f"A shared link lasts 1 to {SHARE_DAYS_MAX} days.")
    expiry = int(time.time()) + days * 86_400
    link = link_path(group.name, expiry, link_signature(await link_secret(control.store), group.name, expiry))
    await audit(request, user.name, "report.share", group.name, days=days, expires=expiry)
    return await report_page(
        request, group, path, status=201, staff=True, can_share=True, shared_link=absolute(request, link), share_days=days
    )


@family_page(login=False)
async def shared_report(request: web.Request) -> web.StreamResponse:
    """A report through a shared link: a bad signature is a 404 (it says nothing about
    which part was wrong), a good one past its expiry a 410."""
    info = request.match_info
    group = find_group(control_of(request).config, info["group"])
    try:
        expiry = int(info["expiry"])
    except ValueError:
        expiry = -1
    secret = await link_secret(control_of(request).store)
    if group is None or expiry < 0 or not same_secret(info["signature"], link_signature(secret, group.name, expiry)):
        return await family_message(request, 404, i18n.N_("This link does not work"), i18n.N_(
            "Check that you copied all of it, or ask the school for a new one."))
    if expiry <= time.time():
        return await family_message(request, 410, i18n.N_("This link has expired"), i18n.N_(
            "Shared report links last a limited time. Ask the school for a new one."))
    return await report_page(request, group, link_path(group.name, expiry, info["signature"]))


@require(*STAFF_REPORT_ROLES)
async def reports_index(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    groups = [g for g in all_group_names(control_of(request)) if can_see_group(user, g)]
    return await render(request, "parents/index.html", {"groups": groups})


# --- parent accounts (staff) -----------------------------------------------------------------------


async def issue_password_link(request: web.Request, name: str) -> str:
    """A new one-time link for ``name`` to set their password (any earlier one stops working)."""
    token = secrets.token_urlsafe(32)
    await control_of(request).store.put_password_token(
        name, token_hash(token), time.time() + PASSWORD_LINK_DAYS * 86_400
    )
    return absolute(request, f"/family/welcome/{token}")


async def save_parent(
    request: web.Request, email: str, children: Sequence[tuple[str, str]], *, merge: bool, language: str | None = None
) -> tuple[User, bool]:
    """Create the parent account ``email`` or update it; ``merge`` adds the children to
    those it has, otherwise they replace them. Its groups are its children's groups.
    Returns the account and whether it is new. ValueError if a staff account has the name."""
    store = control_of(request).store
    existing = await store.get_user(email)
    if existing is not None and existing.role != "parent":
        raise ValueError(f"'{email}' is the name of a {existing.role} account")
    pairs = list(children)
    if existing is not None and merge:
        profile = await store.get_parent_profile(email)
        pairs = list(dict.fromkeys([*(profile.children if profile else ()), *pairs]))
    groups = list(dict.fromkeys(group for _, group in pairs))
    if existing is not None and merge:
        groups = list(dict.fromkeys([*existing.groups, *groups]))
    if existing is None:
        try:
            user = await store.create_user(email, "parent", NO_PASSWORD, groups=groups)
        except Conflict:
            raise ValueError(f"'{email}' was created by someone else just now; try again") from None
    else:
        user = await store.update_user(email, groups=groups) or existing
    await store.save_parent_profile(email, pairs)
    if language is not None:
        await store.set_parent_language(email, language)
    return user, existing is None


async def _parents_page(
    request: web.Request, *, errors: Sequence[str] = (), links: Sequence[tuple[str, str]] = (),
    summary: str = "", form: Mapping[str, Any] | None = None, status: int = 200,
) -> web.Response:  # fmt: skip
    store = control_of(request).store
    profiles: dict[str, ParentProfile] = {p.user: p for p in await store.list_parent_profiles()}
    parents = [(u, profiles.get(u.name)) for u in await store.list_users() if u.role == "parent"]
    context = {
        "parents": parents,
        "no_password": NO_PASSWORD,
        "groups": all_group_names(control_of(request)),
        "languages": i18n.LANGUAGES,
        "is_admin": user_of(request).role == "admin",
        "errors": list(errors),
        "links": list(links),
        "summary": summary,
        "form": form or {"email": "", "child": "", "groups": [], "language": ""},
        "notice": NOTICES.get(request.query.get("done", ""), ""),
        "link_days": PASSWORD_LINK_DAYS,
        "columns": CSV_COLUMNS,
    }
    return await render(request, "parents/admin.html", context, status=status)


@require(*PARENTS_PAGE_ROLES)
async def parents_page(request: web.Request) -> web.StreamResponse:
    return await _parents_page(request)


@require("admin")
async def add_parent(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()
    child = child_name(str(form.get("child", "")))
    chosen = [str(g) for g in form.getall("groups", [])]
    language = i18n.supported(str(form.get("language", "")))
    known = all_group_names(control_of(request))
    errors = [p for p in (email_problem(email),) if p]
    if not child or len(child) > MAX_CHILD_NAME:
        errors.append(f"give the child's name (at most {MAX_CHILD_NAME} characters)")
    if not chosen or any(g not in known for g in chosen):
        errors.append("choose the child's class group(s)")
    user = None
    if not errors:
        try:
            user, created = await save_parent(
                request, email, [(child, g) for g in chosen], merge=True, language=language.tag if language else ""
            )
        except ValueError as exc:
            errors.append(str(exc))
    if user is None:
        kept = {"email": email, "child": child, "groups": chosen, "language": language.tag if language else ""}
        return await _parents_page(request, errors=errors, form=kept, status=422)
    actor = user_of(request).name
    await audit(request, actor, "parent.add" if created else "parent.update", email, groups=list(user.groups))
    links = [(email, await issue_password_link(request, email))] if created else []
    summary = "Parent account created." if created else "Parent account updated."
    return await _parents_page(request, links=links, summary=summary, status=201 if created else 200)


@require("admin")
async def import_parents(request: web.Request) -> web.StreamResponse:
    upload = (await request.post()).get("file")
    if not isinstance(upload, web.FileField):
        return await _parents_page(request, errors=["choose a CSV file to import"], status=422)
    try:
        text = upload.file.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return await _parents_page(request, errors=["the file is not UTF-8 text: save it as \"CSV UTF-8\""], status=422)
    result = parse_parent_csv(text, all_group_names(control_of(request)))
    store = control_of(request).store
    for email, line in result.lines.items():
        existing = await store.get_user(email)
        if existing is not None and existing.role != "parent":
            result.errors.append(f"line {line}: '{email}' is the name of a {existing.role} account")
    if result.errors:
        errors = [*result.errors, "Nothing was imported: correct these lines and import the file again."]
        return await _parents_page(request, errors=errors, status=422)
    links = []
    created = 0
    for email, children in result.children.items():
        _, new = await save_parent(request, email, children, merge=False)
        if new:
            created += 1
            links.append((email, await issue_password_link(request, email)))
    updated = len(result.children) - created
    await audit(request, user_of(request).name, "parent.import", upload.filename or "", created=created, updated=updated)
    return await _parents_page(request, links=links, summary=f"Imported: {created} accounts created, {updated} updated.")


async def _parent_target(request: web.Request) -> User:
    user = await control_of(request).store.get_user(request.match_info["name"])
    if user is None or user.role != "parent":
        raise web.HTTPNotFound(text="No such parent account.")
    return user


@require("admin")
async def new_password_link(request: web.Request) -> web.StreamResponse:
    target = await _parent_target(request)
    link = await issue_password_link(request, target.name)
    await audit(request, user_of(request).name, "parent.link", target.name)
    return await _parents_page(request, links=[(target.name, link)], summary="New password link made; earlier ones no longer work.")


@require("admin")
async def delete_parent(request: web.Request) -> web.StreamResponse:
    target = await _parent_target(request)
    await control_of(request).store.delete_user(target.name)
    await audit(request, user_of(request).name, "parent.delete", target.name)
    raise web.HTTPSeeOther("/parents?done=deleted")


@require("admin")
async def rotate_link_secret(request: web.Request) -> web.StreamResponse:
    await control_of(request).store.set_secret(LINK_SECRET, secrets.token_urlsafe(32))
    await audit(request, user_of(request).name, "report.rotate", LINK_SECRET)
    raise web.HTTPSeeOther("/parents?done=rotated")


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.get_env(app)
    i18n.install(env)
    env.filters["category_title"] = lambda name: category_guidance(name).title
    router = app.router
    router.add_get("/family", family_home, name="family")
    router.add_get("/family/login", family_login_page, name="family-login")
    router.add_post("/family/login", family_login)
    router.add_get("/family/welcome/{token}", welcome_page)
    router.add_post("/family/welcome/{token}", welcome)
    router.add_post("/family/language", save_language)
    router.add_get("/reports", reports_index, name="reports")
    router.add_get("/reports/{group}", group_report, name="report")
    router.add_post("/reports/{group}/share", share_report)
    router.add_get("/r/{group}/{expiry}/{signature}", shared_report, name="shared-report")
    router.add_get("/parents", parents_page, name="parents")
    router.add_post("/parents", add_parent)
    router.add_post("/parents/import", import_parents)
    router.add_post("/parents/rotate", rotate_link_secret)
    router.add_post("/parents/{name}/link", new_password_link)
    router.add_post("/parents/{name}/delete", delete_parent)
    add_nav(app, NavItem("/reports", "Class reports", STAFF_REPORT_ROLES, "nav-reports"))
    add_nav(app, NavItem("/parents", "Parents", PARENTS_PAGE_ROLES, "nav-parents"))
