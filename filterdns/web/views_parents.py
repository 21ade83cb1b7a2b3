"""The admins' page of parent accounts (``/parents``; viewers may look): adding a parent
one by one or a school's CSV at once (``accounts.parent_csv``), one-time password links,
deleting an account, and rotating the key of the shared report links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from filterdns import i18n
from filterdns.accounts.parent_csv import CSV_COLUMNS, MAX_CHILD_NAME, child_name, parse_parent_csv
from filterdns.accounts.passwords import NO_PASSWORD
from filterdns.accounts.rules import email_problem
from filterdns.accounts.service import PASSWORD_LINK_DAYS
from filterdns.links import revoke_report_links
from filterdns.store import User
from filterdns.store.parents import ParentProfile
from filterdns.web.auth import require
from filterdns.web.common import NavItem, accounts_of, add_nav, all_group_names, control_of, render, user_of
from filterdns.web.confirm import confirmation, confirmed
from filterdns.web.consequences import account_removal
from filterdns.web.family import absolute

PARENTS_PAGE_ROLES = ("admin", "viewer")
NOTICES = {
    "deleted": "Parent account deleted.",
    "rotated": "Shared report links signed so far no longer work.",
}


def password_link_url(request: web.Request, token: str) -> str:
    return absolute(request, f"/family/welcome/{token}")


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
    accounts = accounts_of(request)
    user = None
    if not errors:
        try:
            user, created = await accounts.add_parent(
                email, [(child, g) for g in chosen], language=language.tag if language else "", actor=user_of(request).name
            )
        except ValueError as exc:
            errors.append(str(exc))
    if user is None:
        kept = {"email": email, "child": child, "groups": chosen, "language": language.tag if language else ""}
        return await _parents_page(request, errors=errors, form=kept, status=422)
    links = [(email, password_link_url(request, await accounts.password_link(email)))] if created else []
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
    done = await accounts_of(request).import_parents(
        result.children, actor=user_of(request).name, filename=upload.filename or "", pupils=result.pupils
    )
    links = [(email, password_link_url(request, token)) for email, token in done.created]
    summary = f"Imported: {len(done.created)} accounts created, {done.updated} updated."
    return await _parents_page(request, links=links, summary=summary)


async def _parent_target(request: web.Request) -> User:
    user = await control_of(request).store.get_user(request.match_info["name"])
    if user is None or user.role != "parent":
        raise web.HTTPNotFound(text="No such parent account.")
    return user


@require("admin")
async def new_password_link(request: web.Request) -> web.StreamResponse:
    target = await _parent_target(request)
    token = await accounts_of(request).renew_password_link(target.name, actor=user_of(request).name)
    link = password_link_url(request, token)
    return await _parents_page(request, links=[(target.name, link)], summary="New password link made; earlier ones no longer work.")


@require("admin")
async def delete_parent(request: web.Request) -> web.StreamResponse:
    target = await _parent_target(request)
    form = await request.post()
    if not confirmed(form):
        return await confirmation(
            request, form, title=f"Delete the parent account {target.name}?",
            consequences=account_removal(target, delete=True), button=f"Delete {target.name}", cancel="/parents",
        )  # fmt: skip
    await accounts_of(request).delete_parent(target.name, actor=user_of(request).name)
    raise web.HTTPSeeOther("/parents?done=deleted")


@require("admin")
async def rotate_link_secret(request: web.Request) -> web.StreamResponse:
    await revoke_report_links(control_of(request).store, actor=user_of(request).name)
    raise web.HTTPSeeOther("/parents?done=rotated")


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get("/parents", parents_page, name="parents")
    router.add_post("/parents", add_parent)
    router.add_post("/parents/import", import_parents)
    router.add_post("/parents/rotate", rotate_link_secret)
    router.add_post("/parents/{name}/link", new_password_link)
    router.add_post("/parents/{name}/delete", delete_parent)
    add_nav(app, NavItem("/parents", "Parents", PARENTS_PAGE_ROLES, "nav-parents"))
