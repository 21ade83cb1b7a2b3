"""Categories and their lists, custom lists, and the global allow and deny lists.

The categories page shows what the resolver actually loaded (``Control.category_statuses``
and ``list_sizes``): each source's entries, last refresh, error and examples of lines it
could not read, so an admin sees at once that a list went missing or changed format. Only
admins see those examples (viewers see the counts): they are lines of a file on the server.

A custom category (a name, a plain-language description, and domains typed in or a list URL)
is written into the policy document; it cannot take the name of a catalogue category, which
it would silently replace. Changes go through ``views_policy.apply_change`` like every other
policy edit: validated, saved as a revision, audited, applied live.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from filterdns.config.loader import ConfigError
from filterdns.config.model import CategoryConfig
from filterdns.names import typed_domain
from filterdns.policy import document
from filterdns.policy.categories import INLINE_LOCATION, SourceStatus
from filterdns.policy.listhealth import over_share
from filterdns.web.auth import require
from filterdns.web.common import NavItem, add_nav, all_group_names, control_of, render, user_of
from filterdns.web.confirm import confirmation, confirmed
from filterdns.web.consequences import category_removal
from filterdns.web.domain_input import list_change, took_query
from filterdns.web.views_policy import (
    CHANGE_ROLES,
    READ_ROLES,
    Edit,
    apply_change,
    comment_for,
    lines_of,
    notice,
    problems_of,
)

if TYPE_CHECKING:
    from filterdns.server.control import Control

CATEGORY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
LIST_FORMATS = ("auto", "domains", "hosts", "adblock", "wildcard", "dnsmasq")
EMPTY_CATEGORY_FORM = {"name": "", "description": "", "domains": "", "url": "", "format": "auto", "comment": ""}


@dataclass(frozen=True, slots=True)
class CategoryRow:
    category: CategoryConfig
    listed: int  # domains in the loaded index
    sources: list[SourceStatus]
    editable: bool  # defined in the policy document in a shape the form can show whole
    problem: bool  # a source failed, had bad lines or would block too many essential names
    duplicates: int  # entries the category's sources repeat
    too_broad: frozenset[str]  # labels of sources over lists.essential_alert_share


def category_rows(control: Control) -> list[CategoryRow]:
    statuses: dict[str, list[SourceStatus]] = {}
    for status in control.category_statuses():
        statuses.setdefault(status.category, []).append(status)
    sizes = control.list_sizes()
    health = control.list_health()
    share = control.config.node.lists.essential_alert_share
    editable = editable_categories(control.policy_data())
    rows = []
    for category in control.categories():
        sources = statuses.get(category.name, [])
        too_broad = frozenset(
            s.label for s in sources if over_share(len(s.essential_blocked), health.essential_total, share)
        )
        rows.append(
            CategoryRow(
                category,
                sizes.get(category.name, 0),
                sources,
                category.name in editable,
                bool(too_broad) or any(s.error or s.bad_lines for s in sources),
                health.duplicates.get(category.name, 0),
                too_broad,
            )
        )
    return rows


@require(*READ_ROLES)
async def categories_page(request: web.Request) -> web.StreamResponse:
    control = control_of(request)
    return await render(
        request,
        "categories.html",
        {
            "rows": category_rows(control),
            "health": control.list_health(),
            "inline": INLINE_LOCATION,
            "can_change": user_of(request).role in CHANGE_ROLES,
            "notice": notice(request),
        },
    )


# --- custom categories ---------------------------------------------------------------------


def _url_source(source: Any) -> tuple[str, str] | None:
    """(url, format) of a source written as a URL, else None (a file, or something odd)."""
    if isinstance(source, str):
        return (source, "auto") if source.startswith(("http://", "https://")) else None
    if isinstance(source, dict) and set(source) <= {"url", "format"} and source.get("url"):
        return str(source["url"]), str(source.get("format") or "auto")
    return None


def editable_categories(doc: Mapping[str, Any]) -> set[str]:
    """Categories of the policy document that the form shows whole: a description, inline
    domains and at most one list URL. Anything richer (files, several lists) is changed in
    the config file, so that saving the form can never drop a source nobody saw."""
    editable = set()
    for name, body in (doc.get("categories") or {}).items():
        body = body or {}
        sources = body.get("sources") or []
        if set(body) <= {"description", "domains", "sources"} and len(sources) <= 1 and all(map(_url_source, sources)):
            editable.add(name)
    return editable


def category_form(name: str, doc: Mapping[str, Any]) -> dict[str, str]:
    """The edit form's values for an editable custom category."""
    body = (doc.get("categories") or {}).get(name) or {}
    sources = [_url_source(s) for s in body.get("sources") or []]
    url, list_format = sources[0] if sources and sources[0] else ("", "auto")
    return {
        "name": name,
        "description": str(body.get("description") or ""),
        "domains": "\n".join(str(d) for d in body.get("domains") or []),
        "url": url,
        "format": list_format,
        "comment": "",
    }


def _category_change(form: Mapping[str, Any], name: str) -> Edit:
    """The edit a custom-category form asks for (ValueError for what the loader cannot judge:
    a catalogue name, a URL that is not http(s))."""
    description = str(form.get("description", "")).strip()
    url = str(form.get("url", "")).strip()
    list_format = str(form.get("format", "auto"))
    if not description:
        raise ValueError("say in plain words what the category is for; staff and pupils see it")
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("a list URL starts with http:// or https://")
    if list_format not in LIST_FORMATS:
        raise ValueError(f"the list format is one of {', '.join(LIST_FORMATS)}")
    domains = [typed_domain(line).name for line in lines_of(str(form.get("domains", "")))]
    return lambda doc: document.add_custom_category(
        doc, name, description, domains=domains, url=url or None, list_format=list_format
    )


async def _edit_page(
    request: web.Request, form: Mapping[str, str], *, new: bool, problems: Sequence[str] = (), status: int = 200
) -> web.Response:
    return await render(
        request,
        "category_edit.html",
        {"form": form, "new": new, "formats": LIST_FORMATS, "problems": list(problems)},
        status=status,
    )


def _custom_or_404(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in editable_categories(control_of(request).policy_data()):
        raise web.HTTPNotFound(
            text=f"{name} is not a custom list made here; categories with list files are changed in the config file or catalogue."
        )
    return name


@require(*CHANGE_ROLES)
async def new_category_page(request: web.Request) -> web.StreamResponse:
    return await _edit_page(request, EMPTY_CATEGORY_FORM, new=True)


@require(*CHANGE_ROLES)
async def add_category(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip().lower()
    try:
        if not CATEGORY_NAME.fullmatch(name):
            raise ValueError("a category name is up to 40 lower-case letters, digits, - and _ (e.g. exam-season)")
        if name in {c.name for c in control_of(request).categories()}:
            raise ValueError(f"there is a category called {name} already")
        revision = await apply_change(request, _category_change(form, name), comment_for(form, f"add category {name}"))
    except (ConfigError, ValueError, KeyError) as error:
        typed = {key: str(form.get(key, "")) for key in EMPTY_CATEGORY_FORM}
        return await _edit_page(request, typed, new=True, problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/categories?saved={revision}#category-{quote(name)}")


@require(*CHANGE_ROLES)
async def edit_category_page(request: web.Request) -> web.StreamResponse:
    name = _custom_or_404(request)
    return await _edit_page(request, category_form(name, control_of(request).policy_data()), new=False)


@require(*CHANGE_ROLES)
async def edit_category(request: web.Request) -> web.StreamResponse:
    name = _custom_or_404(request)
    form = await request.post()
    try:
        revision = await apply_change(request, _category_change(form, name), comment_for(form, f"change category {name}"))
    except (ConfigError, ValueError, KeyError) as error:
        typed = {key: str(form.get(key, "")) for key in EMPTY_CATEGORY_FORM} | {"name": name}
        return await _edit_page(request, typed, new=False, problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/categories?saved={revision}#category-{quote(name)}")


@require(*CHANGE_ROLES)
async def remove_category(request: web.Request) -> web.StreamResponse:
    name = _custom_or_404(request)
    form = await request.post()
    body = (control_of(request).policy_data().get("categories") or {}).get(name) or {}
    if not confirmed(form) and (consequences := category_removal(control_of(request), name, body)):
        return await confirmation(
            request, form, title=f"Remove the category {name}?", consequences=consequences,
            button=f"Remove {name}", cancel=f"/categories/{quote(name, safe='')}/edit",
        )  # fmt: skip
    try:
        revision = await apply_change(
            request, lambda doc: document.remove_category(doc, name), comment_for(form, f"remove category {name}")
        )
    except (ConfigError, ValueError, KeyError) as error:
        return await _edit_page(
            request, category_form(name, control_of(request).policy_data()), new=False,
            problems=problems_of(error), status=422,
        )  # fmt: skip
    raise web.HTTPSeeOther(f"/categories?saved={revision}")


# --- allow and deny lists ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GroupLists:
    group: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]


async def _lists_page(
    request: web.Request, *, typed: Mapping[str, str] | None = None, problems: Sequence[str] = (), status: int = 200
) -> web.Response:
    control = control_of(request)
    config = control.config
    return await render(
        request,
        "allowdeny.html",
        {
            "allow": config.policy.allow_domains,
            "deny": config.policy.deny_domains,
            "groups": [GroupLists(g.name, g.allow_domains, g.deny_domains) for g in control.groups()
                       if g.allow_domains or g.deny_domains],
            "group_names": all_group_names(control),
            "typed": {"new_allow": "", "new_deny": "", **(typed or {})},
            "can_change": user_of(request).role in CHANGE_ROLES,
            "problems": list(problems),
            "notice": notice(request),
        },
        status=status,
    )  # fmt: skip


@require(*READ_ROLES)
async def lists_page(request: web.Request) -> web.StreamResponse:
    return await _lists_page(request)


@require(*CHANGE_ROLES)
async def change_lists(request: web.Request) -> web.StreamResponse:
    """Add a domain to, or remove one from, the global allow or deny list."""
    form = await request.post()
    typed = None
    try:
        what, change, typed = list_change(None, form)
        revision = await apply_change(request, change, comment_for(form, what))
    except (ConfigError, ValueError, KeyError) as error:
        return await _lists_page(request, typed=typed, problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/lists?saved={revision}{took_query(request, form)}#{form.get('list', '')}")


def setup(app: web.Application) -> None:
    app.router.add_get("/categories", categories_page, name="categories")
    app.router.add_get("/categories/new", new_category_page, name="category_new")
    app.router.add_post("/categories/new", add_category)
    app.router.add_get("/categories/{name}/edit", edit_category_page, name="category_edit")
    app.router.add_post("/categories/{name}/edit", edit_category)
    app.router.add_post("/categories/{name}/remove", remove_category)
    app.router.add_get("/lists", lists_page, name="lists")
    app.router.add_post("/lists", change_lists)
    add_nav(app, NavItem("/categories", "Categories", READ_ROLES, "nav-categories"))
    add_nav(app, NavItem("/lists", "Allow & deny", READ_ROLES, "nav-lists"))
