"""The parents' own pages: logging in, setting the first (or a forgotten) password through
a one-time link, asking for such a link by mail, the privacy notice, their home page with
their classes, and their language."""

from __future__ import annotations

import time
from datetime import datetime

from aiohttp import web

from filterdns import i18n
from filterdns.accounts.rules import EMAIL, password_problems
from filterdns.reports.notice import COUNTRY_LAW, NOT_COVERED, PURPOSE
from filterdns.reports.weekly import Week
from filterdns.web import auth
from filterdns.web.auth import PASSWORDS
from filterdns.web.common import (
    accounts_of, all_group_names, control_of, format_time, principal_of, redirect, user_of, zone_of,
)
from filterdns.web.family import family_message, family_page, family_render, is_parent, translator_for
from filterdns.web.blockpage import RateLimiter
from filterdns.web.security import SESSIONS, session_token

# Asking for a password link by mail: per asking address, and per account so that nobody
# can fill a parent's mailbox. Past either limit the page says the same as always.
RESET_LIMITS = web.AppKey("filterdns.reset_limits", tuple)
RESETS_PER_CLIENT, RESETS_PER_ACCOUNT, RESET_PERIOD = 5, 2, 3600.0


# accounts.rules.password_problems' messages, translated for parents (the catalogues hold them).
_PASSWORD_MESSAGES = (
    i18n.N_("a password needs at least 12 characters"),
    i18n.N_("a password must not contain the user name"),
    i18n.N_("that password is one of the first an attacker tries"),
)


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


async def dead_password_link(request: web.Request) -> web.Response:
    return await family_message(
        request, 404, i18n.N_("This link does not work"),
        i18n.N_("It has been used already or has expired. Ask the school for a new one."),
    )  # fmt: skip


@family_page(login=False)
async def forgot_page(request: web.Request) -> web.StreamResponse:
    """Where a parent who forgot their password asks for a link by mail, or, without mail,
    is told whom at school to ask."""
    return await family_render(request, "parents/forgot.html", {"sent": False, "mail_on": _mail_on(request)})


def _mail_on(request: web.Request) -> bool:
    return control_of(request).config.node.mail.enabled


@family_page(login=False)
async def forgot(request: web.Request) -> web.StreamResponse:
    """Mail a short-lived one-time link to an enabled parent account, through the outbox.
    The answer is the same whether or not the address has an account, and whether or not
    a limit was reached, so the page tells nobody which addresses the school knows."""
    if not _mail_on(request):
        return await forgot_page(request)
    account = str((await request.post()).get("email", "")).strip().lower()
    per_client, per_account = request.app[RESET_LIMITS]
    client = request.remote or ""
    if EMAIL.fullmatch(account) and per_client.allow(client) and per_account.allow(account):
        await accounts_of(request).mail_reset_link(
            account, client=client, base_url=control_of(request).config.node.web.base_url,
            translator=await translator_for(request, account),
        )  # fmt: skip
    return await family_render(request, "parents/forgot.html", {"sent": True, "mail_on": True})


@family_page(login=False)
async def privacy_notice(request: web.Request) -> web.StreamResponse:
    """The privacy notice, open to anyone (a parent decides before logging in)."""
    reports = control_of(request).config.node.reports
    context = {
        "protection": reports.data_protection, "law": COUNTRY_LAW[reports.language],
        "purpose": PURPOSE, "not_covered": NOT_COVERED,
    }  # fmt: skip
    return await family_render(request, "parents/privacy.html", context)


@family_page(login=False)
async def welcome_page(request: web.Request) -> web.StreamResponse:
    user = await accounts_of(request).password_link_user(request.match_info["token"])
    if user is None:
        return await dead_password_link(request)
    translator = await translator_for(request, user.name)
    return await family_render(request, "parents/welcome.html", {"account": user.name, "errors": []}, translator=translator)


@family_page(login=False)
async def welcome(request: web.Request) -> web.StreamResponse:
    """Set the first (or a forgotten) password through a one-time link, then log in."""
    accounts = accounts_of(request)
    token = request.match_info["token"]
    user = await accounts.password_link_user(token)
    if user is None:
        return await dead_password_link(request)
    form = await request.post()
    password = str(form.get("password", ""))
    errors = password_problems(password, user.name)
    if password != form.get("password2", ""):
        errors.insert(0, i18n.N_("the two passwords differ"))
    if not errors and await accounts.use_password_link(token) != user.name:
        errors.append(i18n.N_("This link has just been used. Ask the school for a new one."))
    if errors:
        translator = await translator_for(request, user.name)
        context = {"account": user.name, "errors": errors}
        return await family_render(request, "parents/welcome.html", context, status=422, translator=translator)
    password_hash = await request.app[PASSWORDS].hash(password)
    await accounts.set_password(user.name, password_hash, actor=user.name, action="parent.password", client=request.remote or "")
    response = redirect("/family")
    await request.app[SESSIONS].start(response, user, session_token(request))
    return response


@family_page(login=True)
async def family_home(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    if not is_parent(user):
        return redirect("/reports")
    return await _family_home(request)


async def _family_home(
    request: web.Request, *, note_errors: list[str] | None = None, note_form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:  # fmt: skip
    """The parent's home page; with ``note_errors``, the note they tried to send is shown
    again (``note_form``) with what to change."""
    user = user_of(request)
    profile = await control_of(request).store.get_parent_profile(user.name)
    children: dict[str, list[str]] = {}
    for child, group in profile.children if profile else ():
        children.setdefault(group, []).append(child)
    known = set(all_group_names(control_of(request)))
    classes = [(group, children.get(group, [])) for group in user.groups if group in known]
    config = control_of(request).config
    home = control_of(request).home_profiles
    home_children = await home.children_of(user.name)
    notes = control_of(request).parent_notes
    week = Week.containing(datetime.now(zone_of(request)).date(), zone_of(request))
    context = {
        "classes": classes,
        "saved_language": profile.language if profile else "",
        "languages": i18n.LANGUAGES,
        "saved": request.query.get("saved", ""),  # "1": the language, "digest": the weekly email
        "digest": profile.digest if profile else True,
        "digest_offered": config.node.reports.digest and config.node.mail.enabled,
        "home_children": home_children,
        "home_weeks": {c.pupil: await home.week_at_home(c, week.since, week.until) for c in home_children},
        "paused": {  # a child's pause still running: until when, in the school's time
            c.pupil: format_time(c.settings.paused_until, zone_of(request), "%H:%M")
            for c in home_children if c.settings.paused_until > time.time()
        },
        "note_children": await notes.children_of(user.name),
        "notes": await notes.of_parent(user.name),
        "note_errors": note_errors or [],
        "note_form": note_form or {},
        "max_note": notes.max_note,
    }
    return await family_render(request, "parents/home.html", context, status=status)


@family_page(login=True)
async def send_note(request: web.Request) -> web.StreamResponse:
    """A parent's note to the school about one of their children (``server/parent_notes``)."""
    user = user_of(request)
    if not is_parent(user):
        raise web.HTTPForbidden(text="Only parents send notes from the family page.")
    form = {key: str((await request.post()).get(key, "")) for key in ("child", "place", "site", "text")}
    try:
        await control_of(request).parent_notes.send(user.name, form["child"], form["place"], form["site"], form["text"])
    except ValueError as error:
        return await _family_home(request, note_errors=[str(error)], note_form=form, status=422)
    return redirect("/family?saved=note#notes")


@family_page(login=True)
async def save_language(request: web.Request) -> web.StreamResponse:
    user = user_of(request)
    if not is_parent(user):
        raise web.HTTPForbidden(text="Only parent accounts have a language setting here.")
    chosen = str((await request.post()).get("language", ""))
    language = i18n.supported(chosen)
    await accounts_of(request).set_language(user.name, language.tag if language else "")
    return redirect("/family?saved=1")


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get("/family", family_home, name="family")
    router.add_get("/family/login", family_login_page, name="family-login")
    router.add_post("/family/login", family_login)
    router.add_get("/family/privacy", privacy_notice)
    router.add_get("/family/forgot", forgot_page)
    router.add_post("/family/forgot", forgot)
    app[RESET_LIMITS] = (RateLimiter(RESETS_PER_CLIENT, RESET_PERIOD), RateLimiter(RESETS_PER_ACCOUNT, RESET_PERIOD))
    router.add_get("/family/welcome/{token}", welcome_page)
    router.add_post("/family/welcome/{token}", welcome)
    router.add_post("/family/language", save_language)
    router.add_post("/family/notes", send_note)
