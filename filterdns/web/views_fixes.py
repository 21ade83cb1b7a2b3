"""One-click fixes for a false positive, from wherever staff see one (the query log, the
dashboard's most blocked domains, an alert's detail, a review request, "check a domain"):
an administrator allows the name for its group or for everyone, or says "this is wrong in
the list", which keeps it reachable for everyone as an essential name. A reason is required;
``Control.fix_false_positive`` saves the change as a policy revision and audits it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from filterdns.config.loader import ConfigError
from filterdns.web.auth import require
from filterdns.web.common import control_of, render, user_of, zone_of
from filterdns.web.views_check import explanation_lines
from filterdns.web.views_policy import problems_of

FIX_ROLES = ("admin",)
# The choices of the form: (value, what it does for group G).
FIXES = {
    "group": "Allow it for {group}",
    "everyone": "Allow it for everyone",
    "essential": "This is wrong in the list: keep it reachable for everyone",
}


async def _page(request: web.Request, form: dict[str, str], problems: list[str], status: int = 200) -> web.Response:
    control = control_of(request)
    lines: list[str] = []
    if form["name"] and form["group"]:
        try:
            explanation = control.explain(form["name"], group=form["group"])
            lines = explanation_lines(explanation, zone_of(request), control.listing_sources(explanation))
        except ValueError as error:
            problems = problems + [str(error)]
    return await render(
        request,
        "fix.html",
        {"form": form, "lines": lines, "fixes": {k: v.format(group=form["group"] or "its group") for k, v in FIXES.items()},
         "problems": problems},
        status=status,
    )  # fmt: skip


def _form(source: Any) -> dict[str, str]:
    return {
        "name": str(source.get("name", "")).strip()[:253],
        "group": str(source.get("group", "")).strip()[:100],
        "fix": str(source.get("fix", "group")),
        "reason": str(source.get("reason", "")).strip()[:500],
    }


@require(*FIX_ROLES)
async def fix_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, _form(request.query), [])


@require(*FIX_ROLES)
async def apply_fix(request: web.Request) -> web.StreamResponse:
    form = _form(await request.post())
    if form["fix"] not in FIXES:
        return await _page(request, form, ["choose what to do"], status=422)
    try:
        revision = await control_of(request).fix_false_positive(
            form["name"],
            fix="essential" if form["fix"] == "essential" else "allow",
            group=form["group"] if form["fix"] == "group" else None,
            reason=form["reason"],
            author=user_of(request).name,
        )
    except (ConfigError, ValueError, KeyError) as error:
        return await _page(request, form, problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/revisions?saved={revision}")


def setup(app: web.Application) -> None:
    app.router.add_get("/fixes", fix_page)
    app.router.add_post("/fixes", apply_fix)
