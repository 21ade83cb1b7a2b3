"""A second step before anything that cannot simply be undone from the same page (removing
a group, a category, a rule, deleting or disabling an account): the first press of the
button shows a page that says what will follow ("its 3 networks fall to the guests
rules"), and only its own button does it.

No JavaScript: the console's CSP forbids inline scripts, and a confirm() dialog says
nothing about consequences anyway. The page is a plain form posting the same fields again
to the same address, with ``confirmed=yes`` added; the handler acts only when that is
there. What follows is worked out by ``consequences``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from filterdns.web.common import render
from filterdns.web.security import CSRF_FIELD

CONFIRM_FIELD = "confirmed"


def confirmed(form: Mapping[str, Any]) -> bool:
    """Whether ``form`` came from a confirmation page's button."""
    return form.get(CONFIRM_FIELD) == "yes"


async def confirmation(
    request: web.Request, form: Any, *, title: str, consequences: Sequence[str], button: str, cancel: str
) -> web.Response:
    """The page asking to confirm ``form`` (the fields posted so far, sent again), saying
    what will follow; ``button`` does it, ``cancel`` is where "keep it" goes back to."""
    fields = [(str(k), str(v)) for k, v in form.items() if k not in (CSRF_FIELD, CONFIRM_FIELD) and isinstance(v, str)]
    return await render(
        request,
        "confirm.html",
        {"title": title, "consequences": list(consequences), "button": button, "cancel": cancel,
         "action": request.path, "fields": fields},
    )  # fmt: skip


__all__ = ["CONFIRM_FIELD", "confirmation", "confirmed"]
