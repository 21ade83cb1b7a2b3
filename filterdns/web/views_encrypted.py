"""Encrypted DNS set-up (admins): the roster (import a CSV, see it by group) and, for each
pupil or device, what their platform needs: the ChromeOS policy JSON, an Apple
configuration profile to download, Windows 11 commands and Android's Private DNS name."""

from __future__ import annotations

import json
import re
from collections import Counter

from aiohttp import web
from aiohttp.web_request import FileField

from filterdns.identity.roster import Roster, RosterError
from filterdns.identity.setup import android_hostname, apple_profile, chromeos_policy, doh_url, windows_commands
from filterdns.web.auth import require
from filterdns.web.common import NavItem, add_nav, control_of, render, user_of

SETUP_ROLES = ("admin",)
MAX_ROSTER_BYTES = 20 * 1024 * 1024


def _display_name(roster: Roster, label: str) -> str:
    return next((e.display_name for e in roster.entries if e.pupil_id == label and e.display_name), label)


@require(*SETUP_ROLES)
async def encrypted_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _page(request: web.Request, *, errors: list[str] | None = None, status: int = 200) -> web.Response:
    control = control_of(request)
    config = control.config
    roster = control.roster()
    hostname = config.node.identity.hostname
    group = request.query.get("group", "").strip()
    client_id = request.query.get("id", "").strip()
    identity = roster.identify(client_id) if client_id else None
    known = identity is not None and identity.known
    return await render(
        request,
        "encrypted_dns.html",
        {
            "enabled": bool(config.node.doh.listen or config.node.dot.listen),
            "hostname": hostname,
            "counts": sorted(Counter(entry.group for entry in roster.entries).items()),
            "unknown_group": roster.unknown_group,
            "group": group,
            "members": [entry for entry in roster.entries if entry.group == group] if group else [],
            "chromeos": json.dumps(chromeos_policy(hostname, config.node.identity.salt), indent=2) if hostname else "",
            "salt": config.node.identity.salt,
            "client_id": client_id,
            "identity": identity if known else None,
            "not_found": bool(client_id) and not known,
            "name": _display_name(roster, identity.label) if known else "",
            "doh_url": doh_url(hostname, client_id) if known and hostname else "",
            "android": android_hostname(hostname, client_id) if known and hostname else None,
            "windows": windows_commands(hostname, client_id, config.node.identity.addresses) if known and hostname else [],
            "imported": request.query.get("imported", ""),
            "errors": errors or [],
        },
        status=status,
    )


@require(*SETUP_ROLES)
async def import_roster(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    upload = form.get("roster")
    if not isinstance(upload, FileField):
        return await _page(request, errors=["Choose the roster's CSV file first."], status=422)
    data = upload.file.read(MAX_ROSTER_BYTES + 1)
    if len(data) > MAX_ROSTER_BYTES:
        return await _page(request, errors=["The file is larger than any school's roster (20 MB)."], status=413)
    try:
        text = data.decode("utf-8-sig")
        count = await control_of(request).import_roster(text, actor=user_of(request).name, source=upload.filename)
    except UnicodeDecodeError:
        return await _page(request, errors=["The file is not UTF-8 text: save it from the spreadsheet as CSV UTF-8."], status=422)
    except RosterError as error:
        return await _page(request, errors=error.problems, status=422)
    raise web.HTTPSeeOther(f"/encrypted-dns?imported={count}")


@require(*SETUP_ROLES)
async def apple_profile_download(request: web.Request) -> web.StreamResponse:
    control = control_of(request)
    roster = control.roster()
    client_id = request.query.get("id", "").strip()
    identity = roster.identify(client_id) if client_id else None
    hostname = control.config.node.identity.hostname
    if identity is None or not identity.known or not hostname:
        raise web.HTTPNotFound(text="No pupil or device with that id in the roster (or identity.hostname is not set).")
    body = apple_profile(hostname, client_id, _display_name(roster, identity.label), control.config.node.identity.addresses)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", client_id)
    return web.Response(
        body=body,
        content_type="application/x-apple-aspen-config",
        headers={"Content-Disposition": f'attachment; filename="{filename}.mobileconfig"'},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/encrypted-dns", encrypted_page, name="encrypted_dns")
    app.router.add_post("/encrypted-dns/roster", import_roster, name="encrypted_dns_roster")
    app.router.add_get("/encrypted-dns/profile", apple_profile_download, name="encrypted_dns_profile")
    add_nav(app, NavItem("/encrypted-dns", "Encrypted DNS", SETUP_ROLES, "nav-encrypted-dns"))
