"""Accounts and API tokens. Admins add users, change their role and groups, reset
passwords, disable and enable them, and issue or delete API tokens (a new token is shown
once, then only its hash exists). Viewers may read the list of accounts; nobody but an
admin sees tokens. Every change is audited.

An admin cannot disable or demote their own account, so the console always keeps at
least the admin who is using it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import cast

from aiohttp import web

from filterdns.accounts.rules import ROLES, password_problems
from filterdns.store import ApiToken, Conflict, User
from filterdns.store.users import Role
from filterdns.web.auth import PASSWORDS, check_new_account, require
from filterdns.web.common import NavItem, accounts_of, add_nav, all_group_names, control_of, render, user_of
from filterdns.web.confirm import confirmation, confirmed
from filterdns.web.consequences import account_removal
from filterdns.web.security import new_api_token

USERS_ROLES = ("admin", "viewer")
NOTICES = {
    "added": "User added.",
    "updated": "User changed.",
    "password": "Password changed; the user was logged out everywhere.",
    "disabled": "User disabled and logged out everywhere.",
    "enabled": "User enabled.",
    "token-deleted": "API token deleted.",
}


def chosen_groups(control, values: Sequence[object]) -> list[str]:
    """The groups ticked in a form, checked against the policy's groups."""
    names = [str(v) for v in values]
    known = all_group_names(control)
    unknown = [g for g in names if g not in known]
    if unknown:
        raise ValueError(f"no such group: {', '.join(unknown)}")
    return list(dict.fromkeys(names))


def chosen_role(value: object) -> Role:
    if value not in ROLES:
        raise ValueError(f"a role is one of {', '.join(ROLES)}")
    return cast(Role, value)


async def _target(request: web.Request) -> User:
    user = await control_of(request).store.get_user(request.match_info["name"])
    if user is None:
        raise web.HTTPNotFound(text="No such user.")
    return user


def _not_self(request: web.Request, target: User, what: str) -> None:
    if target.name == user_of(request).name:
        raise ValueError(f"you cannot {what} your own account")


async def _page(
    request: web.Request, *, errors: Sequence[str] = (), new_token: tuple[ApiToken, str] | None = None,
    form: Mapping[str, object] | None = None, status: int = 200,
) -> web.StreamResponse:
    control = control_of(request)
    is_admin = user_of(request).role == "admin"
    return await render(
        request,
        "users.html",
        {
            "users": await control.store.list_users(),
            "tokens": await control.store.list_api_tokens() if is_admin else [],
            "is_admin": is_admin,
            "roles": ROLES,
            "groups": all_group_names(control),
            "errors": list(errors),
            "new_token": new_token,
            "form": form or {"username": "", "role": "teacher", "groups": []},
            "notice": NOTICES.get(request.query.get("done", ""), ""),
            "now": time.time(),
        },
        status=status,
    )


@require(*USERS_ROLES)
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@require("admin")
async def add_user(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    errors = check_new_account(name, password, str(form.get("password2", "")))
    control = control_of(request)
    try:
        role = chosen_role(form.get("role"))
        groups = chosen_groups(control, form.getall("groups", []))
    except ValueError as exc:
        errors.add(str(exc))
    if not errors:
        try:
            password_hash = await request.app[PASSWORDS].hash(password)
            await accounts_of(request).add(name, role, password_hash, groups=groups, actor=user_of(request).name)
        except Conflict:
            errors.add(f"there is a user called {name} already")
    if errors:
        kept = {"username": name, "role": form.get("role", ""), "groups": form.getall("groups", [])}
        return await _page(request, errors=errors.messages, form=kept, status=422)
    raise web.HTTPSeeOther("/users?done=added")


@require("admin")
async def update_user(request: web.Request) -> web.StreamResponse:
    target = await _target(request)
    form = await request.post()
    control = control_of(request)
    try:
        role = chosen_role(form.get("role"))
        if role != target.role:
            _not_self(request, target, "change the role of")
        groups = chosen_groups(control, form.getall("groups", []))
    except ValueError as exc:
        return await _page(request, errors=[str(exc)], status=422)
    await accounts_of(request).update(target.name, role=role, groups=groups, actor=user_of(request).name)
    raise web.HTTPSeeOther("/users?done=updated")


@require("admin")
async def set_password(request: web.Request) -> web.StreamResponse:
    target = await _target(request)
    form = await request.post()
    password = str(form.get("password", ""))
    problems = password_problems(password, target.name)
    if password != form.get("password2", ""):
        problems.insert(0, "the two passwords differ")
    if problems:
        return await _page(request, errors=problems, status=422)
    password_hash = await request.app[PASSWORDS].hash(password)
    await accounts_of(request).set_password(target.name, password_hash, actor=user_of(request).name)
    raise web.HTTPSeeOther("/users?done=password")


async def _set_disabled(request: web.Request, disabled: bool) -> web.StreamResponse:
    target = await _target(request)
    if disabled:
        try:
            _not_self(request, target, "disable")
        except ValueError as exc:
            return await _page(request, errors=[str(exc)], status=422)
        form = await request.post()
        if not confirmed(form):
            return await confirmation(
                request, form, title=f"Disable the account {target.name}?",
                consequences=account_removal(target, delete=False), button=f"Disable {target.name}", cancel="/users",
            )  # fmt: skip
    await accounts_of(request).set_disabled(target.name, disabled, actor=user_of(request).name)
    raise web.HTTPSeeOther("/users?done=" + ("disabled" if disabled else "enabled"))


@require("admin")
async def disable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, True)


@require("admin")
async def enable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, False)


async def issue_token(request: web.Request, owner: str, name: str) -> tuple[ApiToken, str]:
    """Create an API token for ``owner``; returns it with the secret, which is never
    stored or shown again. ValueError for an unknown owner or a missing name."""
    secret = new_api_token()
    token = await accounts_of(request).add_api_token(owner, name, secret, actor=user_of(request).name)
    return token, secret


async def delete_token(request: web.Request, token_id: int) -> bool:
    return await accounts_of(request).delete_api_token(token_id, actor=user_of(request).name)


@require("admin")
async def add_token(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        new_token = await issue_token(request, str(form.get("owner", "")), str(form.get("name", "")))
    except ValueError as exc:
        return await _page(request, errors=[str(exc)], status=422)
    return await _page(request, new_token=new_token, status=201)


@require("admin")
async def remove_token(request: web.Request) -> web.StreamResponse:
    try:
        token_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such token.") from None
    if not await delete_token(request, token_id):
        raise web.HTTPNotFound(text="No such token.")
    raise web.HTTPSeeOther("/users?done=token-deleted")


def setup(app: web.Application) -> None:
    app.router.add_get("/users", users_page, name="users")
    app.router.add_post("/users", add_user)
    app.router.add_post("/users/{name}/update", update_user)
    app.router.add_post("/users/{name}/password", set_password)
    app.router.add_post("/users/{name}/disable", disable_user)
    app.router.add_post("/users/{name}/enable", enable_user)
    app.router.add_post("/tokens", add_token)
    app.router.add_post("/tokens/{id}/delete", remove_token)
    add_nav(app, NavItem("/users", "Users", USERS_ROLES, "nav-users"))
