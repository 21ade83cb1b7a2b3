"""Review requests sent from the block page: staff approve (the name goes on the group's
allow list, as a new policy revision) or decline. ``Control.decide_review`` does both and
writes the audit log; this module decides who may.

Admins decide any request; teachers only those from their own groups, which are also the
only ones they see; viewers see everything and decide nothing.

The queue also holds parents' notes (``server/parent_notes``): a block or a concern about one
child, with the child's name, group and whether it happened at home or at school. Admins
and the teachers of that child's group see and answer them; viewers do not see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from filterdns.config.loader import ConfigError
from filterdns.store import ReviewRequest
from filterdns.web.auth import can_change_group, require, visible_groups
from filterdns.web.common import CONSOLE_ROLES, NavItem, add_nav, control_of, render, user_of
from filterdns.web.views_policy import problems_of

DECIDE_ROLES = ("admin", "teacher")
# Approving puts the site on the group's allow list for good: an administrator's decision.
# A teacher declines, or grants a time-boxed override instead.
APPROVE_ROLES = ("admin",)
SHOWN = 100
DECISIONS: dict[str, Literal["approved", "declined"]] = {"approve": "approved", "decline": "declined"}
NOTICES = {
    "approved": "Approved: the site is now on the group's allow list.",
    "declined": "Declined.",
    "answered": "Answer sent: the parent sees it on their family page.",
}


@dataclass(frozen=True, slots=True)
class ReviewRow:
    request: ReviewRequest
    why: str  # why the name is blocked for the group now, in a few words
    can_decline: bool
    can_approve: bool


def _why(control, request: ReviewRequest) -> str:
    """What the policy does with the name for its group now (it may have changed since)."""
    try:
        explanation = control.explain(request.name, group=request.group)
    except ValueError:  # the group has been removed since
        return "group no longer exists"
    decision = explanation.decision
    if decision.action != "block":
        return "not blocked any more"
    if not decision.category:
        return decision.reason
    sources = control.listing_sources(explanation).get(decision.category)
    listed = f", listed by {', '.join(sources)}" if sources else ""
    return f"{decision.category} ({decision.reason}){listed}"


async def _page(request: web.Request, *, problems: list[str] | None = None, status: int = 200) -> web.Response:
    control = control_of(request)
    user = user_of(request)
    status_filter = "decided" if request.query.get("show") == "decided" else "pending"
    scope = visible_groups(user)
    if status_filter == "pending":
        requests = await control.store.list_review_requests(status="pending", groups=scope, limit=SHOWN)
    else:
        decided = [
            r for status in ("approved", "declined")
            for r in await control.store.list_review_requests(status=status, groups=scope, limit=SHOWN)
        ]
        requests = sorted(decided, key=lambda r: r.id, reverse=True)[:SHOWN]
    rows = [
        ReviewRow(
            r,
            _why(control, r) if r.status == "pending" else "",
            r.status == "pending" and _may_decide(user, r, "declined"),
            r.status == "pending" and _may_decide(user, r, "approved"),
        )
        for r in requests
    ]
    notes = await control.parent_notes.for_staff(user, answered=status_filter == "decided")
    return await render(
        request,
        "reviews.html",
        {
            "rows": rows,
            "notes": notes,
            "show": status_filter,
            "problems": problems or [],
            "notice": NOTICES.get(request.query.get("done", ""), ""),
        },
        status=status,
    )


def _may_decide(user, review: ReviewRequest, decision: str) -> bool:
    roles = APPROVE_ROLES if decision == "approved" else DECIDE_ROLES
    return user.role in roles and can_change_group(user, review.group)


@require(*CONSOLE_ROLES)
async def reviews_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _pending_in_scope(request: web.Request, request_id: int) -> ReviewRequest | None:
    """The pending request ``request_id`` if the user may see it. The store has no lookup by
    id; the newest pending request with an id below ``request_id + 1`` in the user's scope is
    it exactly when it exists, is pending and is theirs."""
    found = await control_of(request).store.list_review_requests(
        status="pending", groups=visible_groups(user_of(request)), limit=1, before_id=request_id + 1
    )
    return found[0] if found and found[0].id == request_id else None


@require(*DECIDE_ROLES)
async def decide(request: web.Request) -> web.StreamResponse:
    decision = DECISIONS.get(request.match_info["decision"])
    try:
        request_id = int(request.match_info["id"])
    except ValueError:
        request_id = -1
    if decision is None or request_id < 0:
        raise web.HTTPNotFound(text="No such review request.")
    user = user_of(request)
    review = await _pending_in_scope(request, request_id)
    if review is None:
        return await _page(request, problems=["That request has been decided already or is not one of yours."], status=409)
    if not _may_decide(user, review, decision):
        raise web.HTTPForbidden(
            text="Only an administrator can approve (it allows the site for good); "
            "you can decline, or grant a time-boxed override."
            if decision == "approved"
            else "You can only decide requests from your own groups."
        )
    try:
        await control_of(request).decide_review(request_id, decision, author=user.name)
    except (ConfigError, ValueError) as error:
        return await _page(request, problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/reviews?done={decision}")


@require(*DECIDE_ROLES)
async def answer_note(request: web.Request) -> web.StreamResponse:
    """Staff answer a parent's note; the service refuses notes outside the user's scope."""
    try:
        note_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such note.") from None
    answer = str((await request.post()).get("answer", ""))
    try:
        await control_of(request).parent_notes.answer(user_of(request), note_id, answer)
    except ValueError as error:
        return await _page(request, problems=[str(error)], status=409)
    raise web.HTTPSeeOther("/reviews?done=answered")


def setup(app: web.Application) -> None:
    app.router.add_get("/reviews", reviews_page, name="reviews")
    app.router.add_post("/reviews/notes/{id}/answer", answer_note)
    app.router.add_post("/reviews/{id}/{decision}", decide)
    add_nav(app, NavItem("/reviews", "Reviews", CONSOLE_ROLES, "nav-reviews"))
