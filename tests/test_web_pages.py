"""The console's pages, server-rendered, used as a browser without JavaScript would: the
dashboard's figures and chart, query log and audit search with paging, "check a domain",
overrides, and user and token management. Every form control has an id and a label so the
browser tests can drive them."""

from __future__ import annotations

import asyncio
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from filterdns.store import AuditFilter
from filterdns.web.charts import Bar, Series, nice_ceiling, stacked_bars
from tests.support.web import PASSWORD, Console, event, make_console


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        yield console


async def text_of(console: Console, path: str, status: int = 200) -> str:
    response = await console.client.get(path)
    text = await response.text()
    assert response.status == status, (path, text[:500])
    return text


def ids_in(html: str, prefix: str) -> list[str]:
    return re.findall(rf'id="({re.escape(prefix)}[^"]*)"', html)


# --- dashboard -------------------------------------------------------------------------------------


async def test_dashboard_shows_traffic_blocks_and_health(console: Console):
    now = time.time()
    # The two blocks are always in different hours (7080 s apart), whatever the time now.
    await console.store.insert_events(
        [event("a.example", t=now - 60), event("b.example", t=now - 60),
         event("games.example", t=now - 7200, verdict="blocked", category="games"),
         event("youtube.com", "8c", t=now - 120, verdict="blocked", category="video", client="10.0.8.4")]
    )  # fmt: skip
    await console.logged_in("ada")
    text = await text_of(console, "/")
    assert re.search(r'id="total-queries">4<', text) and re.search(r'id="total-blocked">2<', text)
    assert text.count('class="bar s-blocked"') == 2 and 'class="bar s-allowed"' in text
    assert '<svg class="chart"' in text
    assert re.search(r'<table id="top-domains">.*games\.example.*youtube\.com', text, re.S) or re.search(
        r'<table id="top-domains">.*youtube\.com.*games\.example', text, re.S
    )
    assert "failing (4 in a row)" in text and "writing normally" in text
    assert re.search(r"<td>video</td><td class=\"num\">2</td>", text)  # domains loaded per category
    # The inline video list would block vimeo.com, one of the one essential name: over 2 %.
    assert '<span class="bad too-broad">inline: would block 1 of 1 essential names</span>' in text
    assert '<a class="fix" href="/fixes?name=games.example&amp;group=">Fix…</a>' in text  # most blocked
    week = await text_of(console, "/?period=7d")
    assert week.count('class="axis" x=') >= 7 + 5  # seven day labels and five gridline numbers


async def test_teachers_dashboard_counts_their_groups_only(console: Console):
    await console.store.insert_events([event("a.example"), event("b.example", "8c", client="10.0.8.2")])
    await console.logged_in("tom")
    text = await text_of(console, "/")
    assert re.search(r'id="total-queries">1<', text)
    assert 'value="8c"' not in text  # not offered in the group picker


def test_chart_scales_and_escapes():
    assert [nice_ceiling(v) for v in (0, 1, 3, 10, 11, 420, 5001)] == [1, 1, 5, 10, 20, 500, 10000]
    chart = stacked_bars(
        [Bar("10:00", "<b>10</b>", {"allowed": 3, "blocked": 1}), Bar("11:00", "11", {})],
        [Series("allowed", "Allowed"), Series("blocked", "Blocked")],
        title="Queries & <things>",
    )
    assert "<b>" not in chart and "&lt;b&gt;10&lt;/b&gt;: 1 blocked" in chart
    assert "Queries &amp; &lt;things&gt;: 4 in total, 3 allowed, 1 blocked" in chart
    heights = [float(h) for h in re.findall(r'class="bar [^"]+"[^>]* height="([\d.]+)"', chart)]
    assert heights[0] == pytest.approx(3 * heights[1])


# --- query log and audit -----------------------------------------------------------------------------


async def test_events_at_home_are_for_safeguarding_admins_only(console: Console):
    await console.store.insert_events([event("school.example"), event("home.example", "7b@home")])
    await console.logged_in("vic")  # a viewer sees every group, but not what devices did at home
    text = await text_of(console, "/querylog")
    assert "school.example" in text and "home.example" not in text
    await text_of(console, "/querylog?group=7b%40home", 403)
    await console.logged_in("ada")
    assert "home.example" in await text_of(console, "/querylog")


async def test_query_log_filters_and_pages(console: Console):
    now = time.time()
    await console.store.insert_events(
        [event(f"n{i}.school.example", t=now - 100 - i) for i in range(60)]
        + [event("www.games.example", t=now - 10, verdict="blocked", category="games"),
           event("other.example", "8c", t=now - 5, client="10.0.8.8")]
    )  # fmt: skip
    await console.logged_in("ada")
    first = await text_of(console, "/querylog")
    assert first.count("<tr class=\"verdict-") == 50
    older = re.search(r'id="older" href="\?([^"]+)"', first).group(1).replace("&amp;", "&")
    second = await text_of(console, f"/querylog?{older}")
    assert second.count("<tr class=\"verdict-") == 12 and 'id="older"' not in second and 'id="newest"' in second
    blocked = await text_of(console, "/querylog?verdict=blocked")
    assert "www.games.example" in blocked and blocked.count("<tr class=\"verdict-") == 1
    assert blocked.count('<a class="fix" href="/fixes?name=www.games.example&amp;group=7b">Fix…</a>') == 1
    by_domain = await text_of(console, "/querylog?domain=games.example&group=7b")
    assert by_domain.count("<tr class=\"verdict-") == 1
    by_client = await text_of(console, "/querylog?client=10.0.8.8")
    assert "other.example" in by_client and by_client.count("<tr class=\"verdict-") == 1
    ranged = await text_of(console, "/querylog?since=" + time.strftime("%Y-%m-%dT%H:%M", time.localtime(now + 3600)))
    assert "No queries match." in ranged
    assert "is not a time" in await text_of(console, "/querylog?until=tomorrow", 400)


async def test_audit_log_filters_and_pages(console: Console):
    for i in range(55):
        await console.store.audit("ada", "policy.change", f"revision {i}")
    await console.login("tom", "a-wrong-password!")
    await console.logged_in("vic")
    text = await text_of(console, "/audit?action=login.failed")
    assert text.count("<tr>") == 2  # the header row and one entry
    assert "127.0.0.1" in text and "wrong password" in text
    first = await text_of(console, "/audit?action=policy.change")
    assert "revision 54" in first and "revision 4<" not in first
    older = re.search(r'id="older" href="\?([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "revision 4<" in await text_of(console, f"/audit?{older}")


# --- check a domain -------------------------------------------------------------------------------------


async def test_check_explains_in_plain_words(console: Console):
    await console.logged_in("ada")
    text = await text_of(console, "/check?name=www.youtube.com&group=8c")
    lines = re.findall(r"<li>(.*?)</li>", text.split('id="explanation-lines"')[1])
    assert lines[0] == "Blocked: video is blocked for 8c at all times."
    assert lines[1] == "Listed (as youtube.com) in: video (Video sites)."
    assert lines[2].startswith("Blocked for 8c at ") and lines[2].endswith(": video, adult.")
    allowed = await text_of(console, "/check?name=www.youtube.com&client=10.0.7.3")
    assert "<span class=\"name\">www.youtube.com</span> for 7b" in allowed and "Allowed: video is not blocked" in allowed
    assert "pick a group or type a client address" in await text_of(console, "/check?name=x.example&group=", 400)
    empty = await text_of(console, "/check")
    assert 'id="explanation"' not in empty and 'id="check-name"' in empty


async def test_check_at_home_uses_the_groups_home_policy(console: Console):
    await console.logged_in("tom")  # a teacher of 7b checks 7b's take-home devices
    home = await text_of(console, "/check?name=www.youtube.com&group=7b&where=home")
    assert '<span class="name">www.youtube.com</span> for 7b@home' in home
    assert '<option value="home" selected>' in home
    await text_of(console, "/check?name=www.youtube.com&group=8c&where=home", 403)


# --- overrides ---------------------------------------------------------------------------------------------


async def test_teacher_grants_and_revokes_an_override_in_one_click(console: Console):
    token = await console.logged_in("tom")
    page = await text_of(console, "/overrides")
    assert '<option value="50" selected>this lesson (50 minutes)</option>' in page
    assert ids_in(page, "override-group") and 'value="8c"' not in page
    response = await console.post("/overrides", {"kind": "allow", "category": "video", "group": "7b", "minutes": "50"}, token)
    assert response.status == 303 and response.headers["Location"] == "/overrides?done=added"
    [override] = console.control.active_overrides()
    assert (override.group, override.category, override.created_by) == ("7b", "video", "tom")
    page = await text_of(console, "/overrides?done=added")
    assert "Override added" in page and f'id="revoke-{override.id}"' in page and ">50 min<" in page
    assert (await console.store.list_audit(AuditFilter(action="override.add")))[0].actor == "tom"

    # A typed domain wins over the category still selected.
    await console.post("/overrides", {"kind": "block", "category": "video", "domain": "Games.Example", "group": "7b"}, token)
    assert sorted((o.domain, o.category) for o in console.control.active_overrides()) == [
        ("", "video"), ("games.example", "")]
    refused = await console.post("/overrides", {"kind": "allow", "category": "adult", "group": "7b", "minutes": "50"}, token)
    assert refused.status == 422 and "protected" in await refused.text()

    response = await console.post(f"/overrides/{override.id}/revoke", {}, token)
    assert response.status == 303
    assert override.id not in {o.id for o in console.control.active_overrides()}


async def test_expired_overrides_disappear(console: Console):
    expires = time.time() + 2.0  # room for a login on a loaded machine before it runs out
    await console.store.add_override("7b", "allow", category="games", created_by="tom", expires_at=expires)
    console.control._overrides = await console.store.list_active_overrides()
    await console.logged_in("tom")
    assert "data-expires" in await text_of(console, "/overrides")
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)
    assert "No overrides in force." in await text_of(console, "/overrides")


async def test_viewers_see_overrides_without_the_form(console: Console):
    await console.store.add_override("7b", "allow", category="games", created_by="tom", expires_at=time.time() + 600)
    console.control._overrides = await console.store.list_active_overrides()
    await console.logged_in("vic")
    page = await text_of(console, "/overrides")
    assert 'id="override-form"' not in page and "revoke-" not in page and "<td>7b</td>" in page


# --- users and tokens -----------------------------------------------------------------------------------


async def test_admin_manages_users(console: Console):
    token = await console.logged_in("ada")
    new = {"username": "newbie", "role": "teacher", "groups": "7b", "password": PASSWORD, "password2": PASSWORD}
    assert (await console.post("/users", new, token)).status == 303
    assert (await console.post("/users", new, token)).status == 422  # the name is taken
    user = await console.store.get_user("newbie")
    assert (user.role, user.groups) == ("teacher", ("7b",))
    assert (await console.post("/users/newbie/update", {"role": "teacher", "groups": "nope"}, token)).status == 422
    response = await console.client.post(
        "/users/newbie/update", data=[("csrf_token", token), ("role", "viewer"), ("groups", "7b"), ("groups", "8c")],
        allow_redirects=False,
    )  # fmt: skip
    assert response.status == 303
    user = await console.store.get_user("newbie")
    assert (user.role, user.groups) == ("viewer", ("7b", "8c"))
    assert (await console.post("/users/ada/disable", {}, token)).status == 422  # never yourself
    assert (await console.post("/users/ada/update", {"role": "viewer"}, token)).status == 422
    assert (await console.post("/users/ghost/disable", {}, token)).status == 404
    actions = [e.action for e in await console.store.list_audit(AuditFilter(actor="ada"))]
    assert actions[:2] == ["user.update", "user.add"]


async def test_password_reset_logs_the_user_out(console: Console):
    await console.logged_in("tom")
    tom_cookie = console.session_cookie()
    console.client.session.cookie_jar.clear()
    token = await console.logged_in("ada")
    password = "fresh-start-for-him"
    assert (await console.post("/users/tom/password", {"password": password, "password2": "other"}, token)).status == 422
    assert (await console.post("/users/tom/password", {"password": password, "password2": password}, token)).status == 303
    console.client.session.cookie_jar.clear()
    console.client.session.cookie_jar.update_cookies({"filterdns_session": tom_cookie})
    assert (await console.client.get("/", allow_redirects=False)).status == 303
    assert (await console.login("tom", password)).status == 303


async def test_api_token_is_shown_once(console: Console):
    token = await console.logged_in("ada")
    response = await console.post("/tokens", {"owner": "vic", "name": "grafana"}, token)
    assert response.status == 201
    secret = re.search(r'<code id="new-token">(fdns_[^<]+)</code>', await response.text()).group(1)
    listing = await text_of(console, "/users")
    assert secret not in listing and "grafana" in listing
    [stored] = await console.store.list_api_tokens()
    assert secret not in stored.token_hash
    assert (await console.post(f"/tokens/{stored.id}/delete", {}, token)).status == 303
    assert await console.store.list_api_tokens() == []
    assert (await console.post("/tokens", {"owner": "vic", "name": ""}, token)).status == 422


async def test_viewers_read_users_but_see_no_tokens_or_forms(console: Console):
    await console.store.create_api_token("0" * 64, "ada", "secret-automation")
    await console.logged_in("vic")
    page = await text_of(console, "/users")
    assert "<td>tess</td>" in page
    assert "secret-automation" not in page and "<form method=\"post\" action=\"/users" not in page
    assert "$argon2" not in page


# --- forms can be driven --------------------------------------------------------------------------------


class FormControls(HTMLParser):
    """Collects form controls, labels and buttons of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict] = []
        self.labels: set[str] = set()
        self.buttons: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(attributes)
        elif tag == "label" and "for" in attributes:
            self.labels.add(attributes["for"])
        elif tag == "button":
            self.buttons.append(attributes)


@pytest.mark.parametrize(
    "path",
    ["/login", "/", "/querylog", "/audit", "/check?name=a.example&group=7b", "/overrides", "/users",
     "/fixes?name=games.example&group=7b"],
)  # fmt: skip
async def test_every_control_has_a_name_an_id_and_a_label(console: Console, path: str):
    await console.store.add_override("7b", "allow", category="games", created_by="tom", expires_at=time.time() + 600)
    console.control._overrides = await console.store.list_active_overrides()
    await console.store.create_api_token("1" * 64, "vic", "monitoring")
    if path != "/login":
        await console.logged_in("ada")
    parser = FormControls()
    parser.feed(await text_of(console, path))
    for control in parser.controls:
        assert control.get("name") and control.get("id"), (path, control)
        labelled = control["id"] in parser.labels or control.get("type") == "checkbox"
        assert labelled, (path, control)
    for button in parser.buttons:
        assert button.get("id") and button.get("type") == "submit", (path, button)
    every_id = [c["id"] for c in parser.controls] + [b["id"] for b in parser.buttons]
    assert len(every_id) == len(set(every_id)), path


async def test_the_health_panel_renders_while_the_store_is_down(console: Console):
    """With the SQLite file moved away the store refuses everything: a login it confirmed
    before still sees the dashboard's health panel (from memory, at once), but cannot change
    anything, and a visitor the store never confirmed gets no further."""
    token = await console.logged_in("ada")
    await text_of(console, "/")
    path = console.store.path
    path.rename(path.with_name("away.db"))
    sink = console.control.store_sink
    try:
        await sink.write_batch([event("a.example")])
        assert sink.down
        started = time.monotonic()
        text = await text_of(console, "/")
        assert time.monotonic() - started < 1.0
        assert 'id="store-error"' in text and f"the database file {path} is gone" in text
        assert re.search(r'id="store-health">\s*<span class="bad">failing', text)
        assert "1 events waiting to be written" in text
        response = await console.post("/overrides", {"group": "7b", "domain": "x.example", "minutes": "30"}, token)
        assert response.status == 503
        console.client.session.cookie_jar.clear()
        console.client.session.cookie_jar.update_cookies({"filterdns_session": "never-confirmed"})
        assert (await console.client.get("/", allow_redirects=False)).status == 503
    finally:
        path.with_name("away.db").rename(path)
        await sink.close()
