"""Outgoing mail: what the outbox holds (digests, alerts, test mails and webhook calls),
whether each went out, and if not, how often it was tried and why it failed. Admins retry
a failed message and send a test mail to check the mail settings; viewers may look, but
not at safeguarding alert mail (admins only, like the alerts themselves).

The page only reads and changes the outbox through the store; the delivery job on the
node holding the "outbox" lease does the sending (within its poll interval).
"""

from __future__ import annotations

import re

from aiohttp import web

from filterdns.store.outbox import STATUSES
from filterdns.web.auth import require, sees_safeguarding
from filterdns.web.common import (
    NavItem,
    add_nav,
    control_of,
    next_page_query,
    render,
    user_of,
)

OUTBOX_ROLES = ("admin", "viewer")
PAGE_SIZE = 50
NOTICES = {
    "retried": "The message is queued again and goes out with the next delivery pass.",
    "test": "Test mail queued; it goes out with the next delivery pass. Its status shows below.",
}
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")


def status_filter(text: str) -> str | None:
    if not text:
        return None
    if text not in STATUSES:
        raise web.HTTPBadRequest(text=f"status is one of {', '.join(STATUSES)}")
    return text


def before_id(text: str) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        raise web.HTTPBadRequest(text="before is a message number") from None


def message_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such message.") from None


@require(*OUTBOX_ROLES)
async def outbox_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _page(request: web.Request, *, errors: list[str] | None = None, to: str = "", status: int = 200):
    control = control_of(request)
    store = control.store
    query = request.query
    form = {"status": query.get("status", "")}
    messages = await store.list_messages(
        status=status_filter(form["status"]), limit=PAGE_SIZE + 1, before_id=before_id(query.get("before", "")),
        hide_kind=None if sees_safeguarding(user_of(request)) else "alert",
    )
    older = None
    if len(messages) > PAGE_SIZE:
        del messages[PAGE_SIZE:]
        older = next_page_query(form, before=messages[-1].id)
    return await render(
        request,
        "outbox.html",
        {
            "mail": control.config.node.mail,
            "counts": await store.count_messages(),
            "statuses": STATUSES,
            "form": form,
            "messages": messages,
            "older": older,
            "paged": "before" in query,
            "newest": next_page_query(form),
            "can_change": user_of(request).role == "admin",
            "notice": NOTICES.get(query.get("done", ""), ""),
            "errors": errors or [],
            "to": to,
        },
        status=status,
    )


@require("admin")
async def retry_message(request: web.Request) -> web.StreamResponse:
    if not await control_of(request).retry_message(message_id(request), actor=user_of(request).name):
        raise web.HTTPNotFound(text="No such failed message (it may have been retried already).")
    raise web.HTTPSeeOther("/outbox?done=retried")


@require("admin")
async def send_test_mail(request: web.Request) -> web.StreamResponse:
    to = str((await request.post()).get("to") or "").strip()
    if not _ADDRESS.fullmatch(to):
        return await _page(request, errors=[f"'{to}' is not a mail address such as it@school.org"], to=to, status=422)
    await control_of(request).send_test_mail(to, actor=user_of(request).name)
    raise web.HTTPSeeOther("/outbox?done=test")


def setup(app: web.Application) -> None:
    app.router.add_get("/outbox", outbox_page, name="outbox")
    app.router.add_post("/outbox/test", send_test_mail)
    app.router.add_post("/outbox/{id}/retry", retry_message)
    add_nav(app, NavItem("/outbox", "Outgoing mail", OUTBOX_ROLES, "nav-outbox"))
