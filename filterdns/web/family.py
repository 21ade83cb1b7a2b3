"""What the pages families read share: who may open them, their language, and rendering.

Who sees what:

* A parent logs in (``/family/login``, first with the one-time link staff gave them) and
  sees the reports of their own class groups only (``views_family``, ``views_reports``).
* Anyone holding a shared link (``links``) sees that one group's reports until the link
  expires (``views_reports``).
* Staff see the same report pages (teachers for their own groups) under ``/reports``;
  admins manage parent accounts under ``/parents`` (``views_parents``).

The staff gate in ``security.guard`` turns parents away from every non-public route, so
the pages parents use are marked public and check the login here (``family_page``),
applying the gate's other rule too: viewers change nothing.

Parent-facing pages are rendered in the reader's language (``i18n``): the ``lang`` query
parameter, else the parent's saved choice, else the browser's Accept-Language, else the
school's language (``reports.language``). The staff
pages (/parents, /reports index) are English like the rest of the console.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from filterdns import i18n
from filterdns.reports.help import SchoolHelp
from filterdns.reports.privacy import PrivacyFacts
from filterdns.store import User
from filterdns.web.common import Handler, control_of, principal_of, public, redirect, render
from filterdns.web.security import UNSAFE_METHODS


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


def absolute(request: web.Request, path: str) -> str:
    return f"{request.url.origin()}{path}"


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
            asked=request.query.get("lang"),
            saved=saved,
            accept_language=request.headers.get("Accept-Language"),
            default=i18n.language(control_of(request).config.node.reports.language),
        )
    )


async def family_render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200,
    translator: i18n.Translator | None = None,
) -> web.Response:  # fmt: skip
    """Render a parent-facing page in the reader's language, with the language switcher
    (links to this page with ``lang`` set), ``link`` (a path keeping a chosen ``lang``) and
    ``privacy`` (what the school keeps and who sees it) and ``help`` (whom to call), both
    from the configuration."""
    translator = translator or await translator_for(request)
    asked = i18n.supported(request.query.get("lang"))

    def link(path: str, **params: object) -> str:
        query = {**({"lang": asked.tag} if asked else {}), **{k: v for k, v in params.items() if v not in (None, "")}}
        return f"{path}?{urlencode(query)}" if query else path

    switcher = [(language, str(request.rel_url.update_query(lang=language.tag))) for language in i18n.LANGUAGES]
    privacy = PrivacyFacts.of(control_of(request).config).sentences(translator)
    merged = {
        "i18n": translator, "switcher": switcher, "link": link, "request_lang": asked.tag if asked else "",
        "privacy": privacy, "help": SchoolHelp.of(control_of(request).config), **context,
    }  # fmt: skip
    return await render(request, template, merged, status=status)


async def family_message(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """A translated page for refusals and dead links (``title``/``message`` are message ids)."""
    return await family_render(request, "parents/message.html", {"title": title, "message": message}, status=status)
