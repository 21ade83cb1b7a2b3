"""Take-home devices on the web (issue 19): a parent's form for each child's home settings
(part of the family page) and the school's list of every pupil's settings. The rules of
what a parent may set live in ``server/home_profiles``; this only reads forms."""

from __future__ import annotations

from aiohttp import web

from filterdns.web.auth import require
from filterdns.web.common import NavItem, add_nav, control_of, format_time, redirect, render, user_of, zone_of
from filterdns.web.family import family_page, is_parent


@family_page(login=True)
async def save_home_settings(request: web.Request) -> web.StreamResponse:
    """One child's home settings from the family page: what is ticked is what is blocked
    on top of the school's floor; an empty bedtime is none; the pause is kept unless chosen."""
    user = user_of(request)
    if not is_parent(user):
        raise web.HTTPForbidden(text="Only parents set home settings for their children.")
    form = await request.post()
    start, end = str(form.get("bedtime_start", "")).strip(), str(form.get("bedtime_end", "")).strip()
    pause = str(form.get("pause", "")).strip()
    try:
        await control_of(request).home_profiles.save(
            user.name, request.match_info["pupil"],
            block=[str(name) for name in form.getall("block", [])],
            bedtime=(start, end) if start or end else None,
            pause_minutes=int(pause) if pause else None,
        )  # fmt: skip
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    return redirect("/family?saved=home")


@require("admin")
async def home_settings_page(request: web.Request) -> web.StreamResponse:
    """What parents set for every pupil's take-home device, with who changed it and when."""
    zone = zone_of(request)
    children = await control_of(request).home_profiles.all_children()
    rows = [
        {
            "child": child,
            "changed": format_time(child.revision.created, zone, "%Y-%m-%d %H:%M") if child.revision else "",
            "paused_until": format_time(child.settings.paused_until, zone, "%Y-%m-%d %H:%M")
            if child.settings.paused_until > 0 else "",
        }
        for child in children
    ]
    return await render(request, "home_settings.html", {"rows": rows})


def setup(app: web.Application) -> None:
    app.router.add_post("/family/home/{pupil}", save_home_settings)
    app.router.add_get("/home-settings", home_settings_page, name="home-settings")
    add_nav(app, NavItem("/home-settings", "Home settings", ("admin",), "nav-home-settings"))
