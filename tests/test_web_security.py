"""The console's web defences, checked across every route the application has: security
headers, CSRF on every state-changing route, escaping of hostile domain names on every page
that shows names, no inline script or style, and role limits (viewers change nothing,
teachers stay in their groups)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from filterdns.store import AuditFilter, StoreError
from filterdns.web import app as web_app
from filterdns.web import start_web
from filterdns.web.security import CSP
from tests.support.web import HOSTILE_NAME, Console, event, fake_control, make_console

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;.example"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        yield console


def unsafe_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, concrete path) for every state-changing route, path variables filled in."""
    routes = []
    for route in app.router.routes():
        if route.method not in UNSAFE or getattr(route.handler, "signed_url_post", False):
            continue  # the latter are authorised by a signature in their URL (see below)
        info = route.resource.get_info()
        path = info.get("path") or re.sub(r"\{(\w+)(:[^}]*)?\}", "1", info["formatter"])
        routes.append((route.method, path))
    return routes


def page_routes(app: web.Application) -> list[str]:
    """Every GET page and API path without path variables."""
    paths = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        if route.method == "GET" and "path" in info:
            paths.append(info["path"])
    return paths


def assert_security_headers(response, *, tls: bool = False) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CSP, response.url
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert ("Strict-Transport-Security" in headers) == tls


def test_csp_forbids_inline_code_and_framing():
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
    assert "frame-ancestors 'none'" in CSP and "default-src 'self'" in CSP


async def test_security_headers_on_every_response(console: Console):
    anonymous = ["/login", "/static/console.css", "/static/console.js", "/healthz", "/metrics", "/nope", "/"]
    for path in anonymous:
        assert_security_headers(await console.client.get(path, allow_redirects=False))
    await console.logged_in("ada")
    paths = page_routes(console.app)
    assert {"/", "/querylog", "/audit", "/users", "/overrides", "/check", "/api/v1/health"} <= set(paths)
    for path in paths:
        response = await console.client.get(path, allow_redirects=False)
        assert response.status < 500, path
        assert_security_headers(response)
        if not path.startswith("/static"):
            assert response.headers["Cache-Control"] == "no-store"
    assert_security_headers(await console.client.post("/users", data={}))  # a 403 error page


async def test_hsts_under_tls(tmp_path: Path):
    async with make_console(tmp_path, secure_cookies=True) as console:
        assert_security_headers(await console.client.get("/login"), tls=True)


async def test_every_state_changing_route_needs_the_csrf_token(console: Console):
    token = await console.logged_in("ada")
    routes = unsafe_routes(console.app)
    assert len(routes) >= 15
    before = len(await console.store.list_audit())
    for method, path in routes:
        for headers, data in (({}, {}), ({"X-CSRF-Token": "wrong"}, {}), ({}, {"csrf_token": token + "x"})):
            response = await console.client.request(method, path, headers=headers, data=data, allow_redirects=False)
            assert response.status == 403, (method, path, headers, data)
            assert "CSRF" in await response.text()
    assert len(await console.store.list_audit()) == before  # nothing happened
    # The one exemption: one-click unsubscribe from a mail (tests/test_web_digest.py).
    exempt = [r.resource.canonical for r in console.app.router.routes() if getattr(r.handler, "signed_url_post", False)]
    assert exempt == ["/family/unsubscribe/{token}"]
    # The token itself is accepted, as a field or as a header.
    response = await console.client.post("/api/v1/overrides", json={"group": "7b", "category": "video", "minutes": 5},
                                         headers={"X-CSRF-Token": token})  # fmt: skip
    assert response.status == 201


async def test_login_form_needs_the_token_from_its_own_cookie(console: Console):
    response = await console.client.post("/login", data={"username": "ada", "password": "x"}, allow_redirects=False)
    assert response.status == 403  # no pre-session cookie, no token
    token = await console.csrf("/login")
    response = await console.client.post(
        "/login", data={"username": "ada", "password": "x", "csrf_token": token + "x"}, allow_redirects=False
    )
    assert response.status == 403
    assert not await console.store.list_audit(AuditFilter(action="login.failed"))


async def test_bearer_tokens_need_no_csrf_token(console: Console):
    token = await console.logged_in("ada")
    created = await console.client.post("/api/v1/tokens", json={"user": "ada", "name": "ci"}, headers={"X-CSRF-Token": token})
    secret = (await created.json())["token"]
    console.client.session.cookie_jar.clear()
    response = await console.client.post(
        "/api/v1/overrides", json={"group": "7b", "category": "video", "minutes": 5},
        headers={"Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    assert response.status == 201


async def seed_hostile_names(console: Console) -> None:
    """A hostile name in every place the console shows names: query events (allowed and
    blocked), a failed login's user name, an audit target."""
    await console.store.insert_events(
        [event(HOSTILE_NAME), event(HOSTILE_NAME, verdict="blocked", category="games"), event("ok.example")]
    )
    await console.store.audit("ada", "override.add", HOSTILE_NAME, {"domain": HOSTILE_NAME})
    await console.login(HOSTILE_NAME, "guess-guess-guess")
    await console.store.add_override("7b", "block", domain=HOSTILE_NAME, created_by="tom", expires_at=time.time() + 600)
    console.control._overrides = await console.store.list_active_overrides()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/querylog",
        "/querylog?verdict=blocked",
        "/audit",
        "/overrides",
        f"/check?name={HOSTILE_NAME}&group=7b",
        f"/login?next=/{HOSTILE_NAME}",
        f"/{HOSTILE_NAME}",
    ],
)
async def test_hostile_names_are_escaped_on_every_page(console: Console, path: str):
    await seed_hostile_names(console)
    if not path.startswith("/login"):
        await console.logged_in("ada")
    response = await console.client.get(path)
    text = await response.text()
    assert "<script>alert" not in text
    if not path.startswith(("/login", f"/{HOSTILE_NAME}")):
        assert ESCAPED in text, path


async def test_api_answers_are_json_not_html(console: Console):
    await seed_hostile_names(console)
    await console.logged_in("ada")
    for path in ("/api/v1/events", f"/api/v1/explain?name={HOSTILE_NAME}&group=7b", "/api/v1/overrides"):
        response = await console.client.get(path)
        assert response.content_type == "application/json"
        assert HOSTILE_NAME in await response.text()  # as JSON data, for the client to escape


INLINE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE)


async def test_no_inline_script_or_style_anywhere(console: Console):
    await seed_hostile_names(console)
    await console.logged_in("ada")
    for path in [p for p in page_routes(console.app) if not p.startswith("/api")] + [
        "/check?name=youtube.com&group=8c", "/users?done=added", "/error-page-please",
    ]:  # fmt: skip
        response = await console.client.get(path)
        text = await response.text()
        if response.content_type == "text/csv":
            # A data download (the compliance CSV) holds names as they are; it is never a page.
            assert response.headers["Content-Disposition"].startswith("attachment"), path
            assert response.headers["X-Content-Type-Options"] == "nosniff", path
            continue
        assert not INLINE.search(text), (path, INLINE.search(text))


async def test_viewers_cannot_change_anything(console: Console):
    token = await console.logged_in("vic")
    routes = unsafe_routes(console.app)
    for method, path in routes:
        if path in ("/logout", "/login", "/setup"):
            continue
        response = await console.client.request(
            method, path, data={"csrf_token": token}, headers={"X-CSRF-Token": token}, allow_redirects=False
        )
        assert response.status == 403, (method, path)
    # Nor with an API token of their own.
    secret = "fdns_viewer-token-for-the-test"
    await console.store.create_api_token(hashlib.sha256(secret.encode()).hexdigest(), "vic", "script")
    console.client.session.cookie_jar.clear()
    for method, path in routes:
        if path.startswith("/api/"):
            response = await console.client.request(method, path, json={}, headers={"Authorization": f"Bearer {secret}"})
            assert response.status == 403, (method, path)
    assert [e.action for e in await console.store.list_audit(AuditFilter(actor="vic"))] == ["login"]


async def test_teachers_stay_in_their_groups(console: Console):
    await console.store.insert_events(
        [event("seven.example", "7b"), event("eight.example", "8c", client="10.0.8.5")]
    )
    other = await console.store.add_override("8c", "allow", category="video", created_by="tess", expires_at=time.time() + 600)
    console.control._overrides = await console.store.list_active_overrides()
    token = await console.logged_in("tom")

    log = await (await console.client.get("/querylog")).text()
    assert "seven.example" in log and "eight.example" not in log
    assert (await console.client.get("/querylog?group=8c")).status == 403
    events = await (await console.client.get("/api/v1/events")).json()
    assert {e["group"] for e in events["events"]} == {"7b"}
    assert (await console.client.get("/api/v1/events?group=8c")).status == 403
    assert (await console.client.get("/api/v1/stats?group=8c")).status == 403
    assert (await console.client.get("/?group=8c")).status == 403

    assert (await console.client.get("/check?name=youtube.com&group=8c")).status == 403
    assert (await console.client.get("/check?name=youtube.com&client=10.0.8.9")).status == 403
    assert (await console.client.get("/api/v1/explain?name=youtube.com&group=8c")).status == 403
    assert (await console.client.get("/check?name=youtube.com&client=10.0.7.9")).status == 200

    overrides_page = await (await console.client.get("/overrides")).text()
    assert f'id="override-{other.id}"' not in overrides_page
    assert (await (await console.client.get("/api/v1/overrides")).json())["overrides"] == []
    response = await console.post("/overrides", {"group": "8c", "category": "games", "minutes": "50"}, token)
    assert response.status == 403
    assert (await console.post(f"/overrides/{other.id}/revoke", {}, token)).status == 404
    response = await console.client.delete(f"/api/v1/overrides/{other.id}", headers={"X-CSRF-Token": token})
    assert response.status == 404
    assert [o.id for o in console.control.active_overrides()] == [other.id]

    for path in ("/audit", "/users", "/api/v1/audit", "/api/v1/tokens", "/api/v1/policy"):
        assert (await console.client.get(path)).status == 403, path
    response = await console.client.put("/api/v1/policy", json={"document": "groups: {}"}, headers={"X-CSRF-Token": token})
    assert response.status == 403


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=localhost", "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


async def test_start_web_serves_tls_and_prints_a_setup_link_once(tmp_path: Path, certificate, caplog):
    caplog.set_level(logging.INFO, logger="filterdns.web")
    async with fake_control(tmp_path) as control:
        runner = await start_web(control, "127.0.0.1", 0, tls_cert=certificate[0], tls_key=certificate[1])
        try:
            port = runner.addresses[0][1]
            [line] = [r.getMessage() for r in caplog.records if "setup?token=" in r.getMessage()]
            link = re.search(r"(https://127\.0\.0\.1:\d+/setup\?token=\S+)", line).group(1)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                async with session.get(f"https://127.0.0.1:{port}/login", ssl=False) as response:
                    assert_security_headers(response, tls=True)
                    assert "Secure" in response.headers["Set-Cookie"]
                async with session.get(link, ssl=False) as response:
                    assert response.status == 200
                with pytest.raises(aiohttp.ClientError):  # no plain HTTP on the TLS port
                    await session.get(f"http://127.0.0.1:{port}/healthz")
        finally:
            await runner.cleanup()
        # With an admin in the store, no link is printed.
        caplog.clear()
        await control.store.create_user("ada", "admin", "not-a-real-hash")
        runner = await start_web(control, "127.0.0.1", 0)
        await runner.cleanup()
        assert not [r for r in caplog.records if "setup?token=" in r.getMessage()]
        assert any("staff console on http://127.0.0.1:" in r.getMessage() for r in caplog.records)


async def test_the_setup_link_is_printed_only_when_the_store_says_there_is_no_admin(tmp_path: Path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="filterdns.web")
    monkeypatch.setattr(web_app, "SETUP_CHECK_INTERVAL", 0.05)
    async with fake_control(tmp_path) as control:
        await control.store.create_user("ada", "admin", "not-a-real-hash")
        readable = control.store.list_users
        failures = [3]

        async def unreadable_at_first():
            if failures[0]:
                failures[0] -= 1
                raise StoreError("database disk image is malformed")
            return await readable()

        monkeypatch.setattr(control.store, "list_users", unreadable_at_first)

        def lines(text: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if text in r.getMessage()]

        # A restart with an unreadable store and an admin in it: no link, then or later.
        runner = await start_web(control, "127.0.0.1", 0)
        await asyncio.sleep(0.5)
        await runner.cleanup()
        assert not lines("setup?token=")
        assert len(lines("cannot check for an admin account yet")) == 1
        assert len(lines("has an admin account; no setup link needed")) == 1
        # No admin: the link comes once the store can say so.
        caplog.clear()
        failures[0] = 3
        await control.store.update_user("ada", disabled=True)
        runner = await start_web(control, "127.0.0.1", 0)
        await asyncio.sleep(0.5)
        await runner.cleanup()
        assert len(lines("setup?token=")) == 1


async def test_only_pages_hand_out_the_login_form_cookie(console: Console):
    for path in ("/healthz", "/metrics", "/static/console.css", "/api/v1/openapi.json"):
        assert "Set-Cookie" not in (await console.client.get(path)).headers, path
    assert "filterdns_login=" in (await console.client.get("/login")).headers["Set-Cookie"]
