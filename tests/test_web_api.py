"""The JSON API under /api/v1: its OpenAPI document matches the routes, tokens authenticate
with their user's role and scope, and each endpoint does what it documents."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp import web

from filterdns.store import HOUR, AuditFilter
from filterdns.web.openapi import API_PREFIX
from tests.support.web import Console, event, make_console


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        yield console


async def bearer_for(console: Console, user: str, name: str = "script") -> dict[str, str]:
    """An API token for ``user``, made by the admin through the API; returns its header."""
    token = await console.logged_in("ada")
    response = await console.client.post("/api/v1/tokens", json={"user": user, "name": name}, headers={"X-CSRF-Token": token})
    assert response.status == 201
    secret = (await response.json())["token"]
    console.client.session.cookie_jar.clear()
    return {"Authorization": f"Bearer {secret}"}


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        if path.startswith(API_PREFIX) and route.method != "HEAD":
            found.add((route.method.lower(), path))
    return found


async def test_openapi_documents_exactly_the_routes(console: Console):
    response = await console.client.get("/api/v1/openapi.json")  # no login needed
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"] == "3.1.0"
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert documented == api_routes(console.app)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation["summary"] and operation["responses"], (method, path)
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}
            if operation["security"]:
                assert operation["description"].startswith("Roles: ")
    assert {"bearer", "session"} <= set(spec["components"]["securitySchemes"])


async def test_unauthenticated_and_bad_tokens_get_401(console: Console):
    for headers in ({}, {"Authorization": "Bearer fdns_nonsense"}, {"Authorization": "Basic YWRhOng="}):
        response = await console.client.get("/api/v1/events", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "error" in await response.json()


async def test_tokens_are_shown_once_listed_without_secrets_and_deletable(console: Console):
    headers = await bearer_for(console, "vic", "monitoring")
    assert (await console.client.get("/api/v1/health", headers=headers)).status == 200
    token = await console.logged_in("ada")
    listed = (await (await console.client.get("/api/v1/tokens")).json())["tokens"]
    assert [(t["user"], t["name"]) for t in listed] == [("vic", "monitoring")]
    assert "token_hash" not in listed[0] and "token" not in listed[0]
    assert listed[0]["last_used"] is not None
    response = await console.client.delete(f"/api/v1/tokens/{listed[0]['id']}", headers={"X-CSRF-Token": token})
    assert response.status == 204
    console.client.session.cookie_jar.clear()
    assert (await console.client.get("/api/v1/health", headers=headers)).status == 401


async def test_a_password_reset_revokes_the_accounts_api_tokens(console: Console):
    """A reset means the password may be known to someone else, who may have made a token."""
    teacher = await bearer_for(console, "tom")
    viewer = await bearer_for(console, "vic")
    assert (await console.client.get("/api/v1/events?group=7b", headers=teacher)).status == 200
    token = await console.logged_in("ada")
    new_password = "a-brand-new-passphrase"
    response = await console.post("/users/tom/password", {"password": new_password, "password2": new_password}, token)
    assert response.status == 303
    console.client.session.cookie_jar.clear()
    assert (await console.client.get("/api/v1/events?group=7b", headers=teacher)).status == 401
    assert (await console.client.get("/api/v1/policy", headers=viewer)).status == 200  # others' tokens stay
    assert [t.user for t in await console.store.list_api_tokens()] == ["vic"]
    [entry] = await console.store.list_audit(AuditFilter(action="user.password"))
    assert entry.detail["tokens_revoked"] == 1


async def test_tokens_carry_their_users_role(console: Console):
    viewer = await bearer_for(console, "vic")
    assert (await console.client.get("/api/v1/policy", headers=viewer)).status == 200
    assert (await console.client.put("/api/v1/policy", json={"document": "groups: {}"}, headers=viewer)).status == 403
    assert (await console.client.get("/api/v1/tokens", headers=viewer)).status == 403
    teacher = await bearer_for(console, "tom")
    assert (await console.client.get("/api/v1/events?group=7b", headers=teacher)).status == 200
    assert (await console.client.get("/api/v1/events?group=8c", headers=teacher)).status == 403
    assert (await console.client.get("/api/v1/audit", headers=teacher)).status == 403
    parent = await bearer_for(console, "pat")
    assert (await console.client.get("/api/v1/events", headers=parent)).status == 403
    # A disabled user's tokens stop working.
    await console.store.update_user("tom", disabled=True)
    assert (await console.client.get("/api/v1/events", headers=teacher)).status == 401


async def test_events_pages_with_a_cursor(console: Console):
    now = time.time()
    await console.store.insert_events([event(f"n{i}.example", t=now - i) for i in range(120)])
    await console.store.insert_events([event("other.example", "8c", verdict="blocked", t=now)])
    await console.logged_in("ada")
    names, cursor = [], ""
    while True:
        query = "/api/v1/events?group=7b&limit=50" + (f"&cursor={cursor}" if cursor else "")
        page = await (await console.client.get(query)).json()
        names += [e["name"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == [f"n{i}.example" for i in range(120)]
    blocked = await (await console.client.get("/api/v1/events?verdict=blocked")).json()
    assert [e["name"] for e in blocked["events"]] == ["other.example"]
    for bad in ("verdict=maybe", "limit=0", "since=yesterday", "cursor=junk"):
        response = await console.client.get(f"/api/v1/events?{bad}")
        assert response.status == 400, bad


async def test_stats_count_per_hour_and_group(console: Console):
    hour = (time.time() // HOUR - 2) * HOUR
    await console.store.insert_events(
        [event("a.example", t=hour + 10), event("b.example", t=hour + 20, verdict="blocked", category="games"),
         event("c.example", "8c", t=hour + HOUR + 5, verdict="blocked", category="video")]
    )  # fmt: skip
    await console.logged_in("ada")
    stats = await (await console.client.get(f"/api/v1/stats?since={hour}&until={hour + 3 * HOUR}")).json()
    series = {(s["start"], s["group"]): (s["allowed"], s["blocked"]) for s in stats["series"]}
    assert series == {(hour, "7b"): (1, 1), (hour + HOUR, "8c"): (0, 1)}
    assert {r["key"]: r["count"] for r in stats["top_categories"]} == {"games": 1, "video": 1}
    assert [r["key"] for r in stats["top_names"]] == ["b.example", "c.example"]
    daily = await (await console.client.get(f"/api/v1/stats?since={hour - 86400}&bucket=day&group=8c")).json()
    assert sum(s["blocked"] for s in daily["series"]) == 1 and {s["group"] for s in daily["series"]} == {"8c"}
    assert (await console.client.get("/api/v1/stats?bucket=week")).status == 400


async def test_explain(console: Console):
    await console.logged_in("tom")
    answer = await (await console.client.get("/api/v1/explain?name=GAMES.example.&group=7b")).json()
    assert answer["name"] == "games.example"
    assert answer["decision"]["action"] == "block" and answer["decision"]["category"] == "games"
    assert answer["listings"] == [{"suffix": "games.example", "categories": ["games"]}]
    assert answer["lines"][0].startswith("Blocked: games is blocked for 7b")
    by_client = await (await console.client.get("/api/v1/explain?name=youtube.com&client=10.0.7.20")).json()
    assert by_client["group"] == "7b" and by_client["decision"]["action"] == "allow"
    for bad in ("name=&group=7b", "name=x.example", "name=x.example&client=not-an-ip", "name=x.example&group=7b&at=soon"):
        assert (await console.client.get(f"/api/v1/explain?{bad}")).status == 400, bad


async def test_overrides_add_list_revoke(console: Console):
    teacher = await bearer_for(console, "tom")
    response = await console.client.post(
        "/api/v1/overrides", json={"group": "7b", "kind": "allow", "category": "games", "minutes": 50}, headers=teacher
    )
    assert response.status == 201
    added = await response.json()
    assert added["group"] == "7b" and added["created_by"] == "tom" and 2990 < added["seconds_left"] <= 3000
    listed = (await (await console.client.get("/api/v1/overrides", headers=teacher)).json())["overrides"]
    assert [o["id"] for o in listed] == [added["id"]]
    for body in ({"group": "7b", "kind": "allow", "category": "adult", "minutes": 5},  # protected
                 {"group": "7b", "category": "games", "minutes": 0},
                 {"group": "7b", "minutes": 5},
                 {"group": "7b", "kind": "unblock", "category": "games"}):  # fmt: skip
        assert (await console.client.post("/api/v1/overrides", json=body, headers=teacher)).status == 400, body
    assert (await console.client.post("/api/v1/overrides", data="[1]", headers=teacher)).status == 400
    assert (await console.client.delete(f"/api/v1/overrides/{added['id']}", headers=teacher)).status == 204
    assert (await console.client.delete(f"/api/v1/overrides/{added['id']}", headers=teacher)).status == 404
    assert console.control.active_overrides() == []


async def test_policy_revisions_and_rollback(console: Console):
    admin = await bearer_for(console, "ada")
    first = await console.client.put("/api/v1/policy", json={"document": "groups: {7b: {}}", "comment": "one"}, headers=admin)
    assert first.status == 200
    second = await console.client.put("/api/v1/policy", json={"document": {"groups": {}}}, headers=admin)
    assert (await second.json())["revision"] == (await first.json())["revision"] + 1
    bad = await console.client.put("/api/v1/policy", json={"document": "- a list"}, headers=admin)
    assert bad.status == 422 and (await bad.json())["problems"]
    current = await (await console.client.get("/api/v1/policy", headers=admin)).json()
    assert current == {"revision": 2, "document": "groups: {}\n"}
    revisions = (await (await console.client.get("/api/v1/revisions", headers=admin)).json())["revisions"]
    assert [(r["id"], r["comment"]) for r in revisions] == [(2, ""), (1, "one")]
    assert "yaml_text" not in revisions[0]
    one = await (await console.client.get("/api/v1/revisions/1", headers=admin)).json()
    assert one["yaml_text"] == "groups: {7b: {}}"
    rolled = await console.client.post("/api/v1/revisions/1/rollback", headers=admin)
    assert (await rolled.json())["revision"] == 3
    assert (await console.client.get("/api/v1/revisions/99", headers=admin)).status == 404


async def test_a_body_nested_too_deeply_is_a_plain_400(console: Console):
    admin = await bearer_for(console, "ada")
    depth = 100_000
    body = '{"document": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    response = await console.client.put(
        "/api/v1/policy", data=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "nested too deeply" in await response.text()


async def test_audit_and_health(console: Console):
    viewer = await bearer_for(console, "vic")
    audit = await (await console.client.get("/api/v1/audit?action=token.add&limit=1", headers=viewer)).json()
    assert [(e["actor"], e["target"]) for e in audit["entries"]] == [("ada", "vic")]
    assert audit["next_before"] is None
    health = await (await console.client.get("/api/v1/health", headers=viewer)).json()
    assert [u["healthy"] for u in health["upstreams"]] == [True, False]
    assert {entry["category"] for entry in health["lists"]} == {"video", "games", "adult"}
    assert health["store"]["ok"] and health["store"]["location"].startswith("sqlite")


async def test_health_answers_from_memory_while_the_store_is_down(console: Console):
    headers = await bearer_for(console, "vic", "monitoring")
    assert (await console.client.get("/api/v1/health", headers=headers)).status == 200
    path = console.store.path
    path.rename(path.with_name("away.db"))
    sink = console.control.store_sink
    try:
        await sink.write_batch([event("a.example"), event("b.example")])
        response = await console.client.get("/api/v1/health", headers=headers)
        assert response.status == 200
        store = (await response.json())["store"]
        assert not store["ok"] and "is gone" in store["detail"] and store["buffered"] == 2
        assert store["since"] is not None and store["location"].endswith(str(path))
        assert (await console.client.get("/api/v1/revisions", headers=headers)).status == 503  # needs the store
    finally:
        path.with_name("away.db").rename(path)
        await sink.close()
