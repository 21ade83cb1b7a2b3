"""The weekly digest on the staff side: this week's digest for one class as a parent will
get it, before it goes out, and a test copy of it sent to a member of staff.

The preview is composed exactly as the digest job composes parents' mails
(``DigestComposer``), for the week the next send moment covers, with the counts as they are
now. It shows the plain-text part (what every mail program can show); the HTML part needs
inline styles the console's CSP does not allow, so it is seen in the test copy. The copy is
written by ``Control`` (audited) and delivered by the outbox like any mail. Admins and
viewers look; admins send.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from filterdns import i18n
from filterdns.accounts.rules import EMAIL
from filterdns.reports.digest import DigestComposer, DigestMail, digest_week
from filterdns.reports.digest_job import next_send_moment
from filterdns.web.auth import require
from filterdns.web.common import NavItem, add_nav, all_group_names, control_of, render, user_of

PREVIEW_ROLES = ("admin", "viewer")
SENT = "A test copy is queued; it goes out with the next delivery pass (see Outgoing mail)."


async def _preview(request: web.Request, group: str, tag: str, to: str) -> tuple[DigestMail | None, float]:
    """The digest parents of ``group`` get at the next send moment, as of now, in the
    language ``tag`` ("": the school's), addressed to ``to``; and that moment."""
    control = control_of(request)
    config = control.config
    now = time.time()
    send_day, moment = next_send_moment(config.node.reports, ZoneInfo(config.policy.timezone), now)
    week = digest_week(send_day, ZoneInfo(config.policy.timezone))
    composer = DigestComposer(control.store, config, week, now=now)
    language = i18n.supported(tag) or composer.school_language
    return await composer.compose_for(to, [group], {}, language), moment


def _form(source: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(source.get(key, "")).strip()[:254] for key in ("group", "language", "to")}


async def _page(request: web.Request, form: dict[str, str], *, problems: list[str] | None = None, status: int = 200):
    control = control_of(request)
    groups = all_group_names(control)
    form["group"] = form["group"] if form["group"] in groups else (groups[0] if groups else "")
    mail, moment = await _preview(request, form["group"], form["language"], form["to"] or "parent@example.org")
    return await render(
        request,
        "digest_preview.html",
        {
            "form": form,
            "groups": groups,
            "languages": i18n.LANGUAGES,
            "school_language": i18n.language(control.config.node.reports.language),
            "enabled": control.config.node.reports.digest,
            "mail_enabled": control.config.node.mail.enabled,
            "moment": moment,
            "mail": mail,
            "can_send": user_of(request).role == "admin",
            "problems": problems or [],
            "notice": SENT if request.query.get("sent") == "1" else "",
        },
        status=status,
    )


@require(*PREVIEW_ROLES)
async def preview_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, _form(request.query))


@require("admin")
async def send_copy(request: web.Request) -> web.StreamResponse:
    form = _form(await request.post())
    if form["group"] not in all_group_names(control_of(request)):
        raise web.HTTPNotFound(text=f"There is no group called {form['group']}.")
    if not EMAIL.fullmatch(form["to"]):
        return await _page(request, form, problems=[f"'{form['to']}' is not a mail address such as it@school.org"], status=422)
    mail, _ = await _preview(request, form["group"], form["language"], form["to"])
    if mail is None:
        return await _page(request, form, problems=[f"{form['group']} has no report for this week yet: there is nothing to send"], status=422)
    await control_of(request).send_digest_copy(mail, actor=user_of(request).name)
    raise web.HTTPSeeOther("/digest?" + urlencode({"group": form["group"], "language": form["language"], "sent": 1}))


def setup(app: web.Application) -> None:
    app.router.add_get("/digest", preview_page, name="digest_preview")
    app.router.add_post("/digest/send", send_copy)
    add_nav(app, NavItem("/digest", "Weekly digest", PREVIEW_ROLES, "nav-digest"))
