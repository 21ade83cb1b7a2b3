"""The policy pages over real HTTP: groups, per-group policy, timetable, categories and lists,
revisions and rollback, review requests. The console is web-core's real app with a stand-in
Control that, like the real one, validates every document with the config loader and
follows each revision (tests/support/web.py, extended here)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

import filterdns.web.app as web_app
import tests.support.web as support
from filterdns.config.loader import config_with_policy
from filterdns.config.model import GroupConfig, ScheduleConfig, ScheduledRule
from filterdns.policy import document
from filterdns.server.active_policy import build_policy
from filterdns.store import StoreError
from filterdns.web import views_lists, views_policy, views_reviews
from filterdns.web.views_policy import Cell, timetable
from tests.support.web import Console, make_console

POLICY = """\
timezone: Europe/London
categories:
  video: {description: "Video sites & <clips>", domains: [youtube.com, vimeo.com]}
  games: {description: Online games, domains: [games.example]}
  adult: {description: Adult content, domains: [adult.example]}
  local: {description: The school's own list, sources: [lists/local.txt, lists/broken.txt]}
schedules:
  lessons:
    weekly: {mon-fri: ["08:45-10:45", "11:05-12:25"]}
    exceptions:
      - {name: INSET day, dates: "2027-02-22"}
  lunch:
    weekly: {mon-fri: ["12:25-13:15"]}
groups:
  7b:
    networks: [10.0.7.0/24]
    block: [adult, games]
    rules:
      - {during: lessons, block: [video]}
      - {during: lunch, allow: [games]}
  8c: {networks: [10.0.8.0/24], block: [adult, video]}
default_group: guests
allow: [school.example]
essential_extra: [vimeo.com]
"""


class PolicyControl(support.FakeControl):
    """The stand-in Control, doing what the real one does with a policy document: refuse it
    with the loader's problems, or store it as a revision and apply it."""

    def __init__(self, config, store):
        super().__init__(config, store)
        self.applied: list[tuple[str, str, str]] = []
        self.decided: list[tuple[int, str, str]] = []
        # Like a policy imported from config.yaml: normalised, as the loader's policy_document does.
        self._use(document.render(yaml.safe_load(POLICY)))

    def _use(self, text: str) -> None:
        config = config_with_policy(self.config, text)  # ConfigError: nothing changes
        self.config, self.policy, self.policy_text = config, build_policy(config), text

    async def apply_policy(self, document_text, *, author: str, comment: str = "") -> int:
        text = document_text if isinstance(document_text, str) else document.render(document_text)
        self._use(text)
        self.revision = await self.store.add_revision(text, author, comment)
        self.applied.append((text, author, comment))
        return self.revision

    async def decide_review(self, request_id: int, decision: str, *, author: str):
        request = await self.store.decide_review_request(request_id, decision, author)
        if request is None:
            raise ValueError(f"no pending review request {request_id}")
        self.decided.append((request_id, decision, author))
        if decision == "approved":
            await self.apply_policy(
                document.add_to_allow(self.policy_data(), request.name, request.group), author=author,
                comment=f"review request {request_id}",
            )  # fmt: skip
        return request


@pytest.fixture
async def console(tmp_path: Path, monkeypatch) -> AsyncIterator[Console]:
    monkeypatch.setattr(support, "FakeControl", PolicyControl)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "local.txt").write_text("local.example\nnot a <domain> line\n")
    # Readable, so the loader accepts it, but a broken gzip stream: the list build fails on it.
    (tmp_path / "lists" / "broken.txt").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    mine = tuple(m.setup for m in (views_policy, views_lists, views_reviews) if m.setup not in web_app.PAGES)
    monkeypatch.setattr(web_app, "PAGES", web_app.PAGES + mine)
    async with make_console(tmp_path) as console:
        control = console.control
        control.revision = await console.store.add_revision(control.policy_text, "config-file", "imported")
        yield console


def group(control, name: str) -> GroupConfig:
    return next(g for g in control.groups() if g.name == name)


async def page(console: Console, path: str) -> tuple[int, str]:
    response = await console.client.get(path, allow_redirects=False)
    return response.status, await response.text()


# --- groups and their policy ------------------------------------------------------------------


async def test_admin_changes_a_groups_blocked_categories(console):
    token = await console.logged_in("ada")
    status, text = await page(console, "/groups/7b")
    assert status == 200
    assert 'id="block-games" name="block" value="games" checked' in text
    assert "Video sites &amp; &lt;clips&gt;" in text  # each category's description, escaped

    response = await console.post(
        "/groups/7b/categories",
        {"block": ["adult", "video"], "revision": str(console.control.revision), "comment": "video all day"},
        token,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/groups/7b?saved={console.control.revision}#categories"
    text, author, comment = console.control.applied[-1]
    assert yaml.safe_load(text)["groups"]["7b"]["block"] == ["adult", "video"]
    assert (author, comment) == ("ada", "7b: categories blocked always: video all day")
    assert text == document.render(yaml.safe_load(text))  # rendered, in the stable order
    assert console.control.explain("www.youtube.com", group="7b").decision.action == "block"
    assert (await console.store.latest_revision()).author == "ada"

    status, text = await page(console, "/groups/7b?saved=2")
    assert 'value="video" checked' in text and 'value="games" checked' not in text
    assert "Saved as revision 2" in text


async def test_every_group_form_makes_the_right_edit(console):
    token = await console.logged_in("ada")
    revision = lambda: str(console.control.revision)
    forms = [
        ("details", {"description": "Class 7B", "networks": "10.0.7.0/24\n10.0.70.0/24", "macs": "AA-BB-CC-DD-EE-01"}),
        ("safe_search", {"search": "1", "youtube": "strict"}),
        ("block_mode", {"mode": "nxdomain"}),
        ("rules", {"rule-0-during": "lessons", "rule-0-block": ["video", "games"], "rule-1-during": "lunch",
                   "rule-1-allow": "games", "rule-1-remove": "1", "rule-new-during": "lunch", "rule-new-allow": "adult",
                   "confirmed": "yes"}),
        ("lists", {"list": "allow", "action": "add", "domain": "Khanacademy.org"}),
        ("lists", {"list": "deny", "action": "add", "domain": "bad.example"}),
    ]  # fmt: skip
    for section, data in forms:
        response = await console.post(f"/groups/7b/{section}", {**data, "revision": revision()}, token)
        assert response.status == 303, (section, await response.text())
    g = group(console.control, "7b")
    assert g.description == "Class 7B"
    assert [str(n) for n in g.networks] == ["10.0.7.0/24", "10.0.70.0/24"]
    assert g.macs == ("aa:bb:cc:dd:ee:01",)
    assert (g.safe_search.search, g.safe_search.youtube) == (True, "strict")
    assert g.block_mode == "nxdomain"
    assert g.rules == (ScheduledRule("lessons", ("video", "games")), ScheduledRule("lunch", (), ("adult",)))
    assert (g.allow_domains, g.deny_domains) == (("khanacademy.org",), ("bad.example",))

    response = await console.post("/groups/7b/lists", {"list": "deny", "action": "remove", "domain": "bad.example"}, token)
    assert response.status == 303
    assert group(console.control, "7b").deny_domains == ()
    response = await console.post("/groups/7b/block_mode", {"mode": "", "revision": revision()}, token)
    assert response.status == 303 and group(console.control, "7b").block_mode is None


async def test_domains_are_kept_in_one_form_shown_in_unicode_and_read_out_of_pasted_addresses(console):
    """#20 item 2: what staff type or paste into a list form is stored, shown and removed as
    one name; an address gives its host name, and that is said; junk gets a plain sentence."""
    token = await console.logged_in("ada")
    assert (await console.post("/groups/7b/lists", {"list": "deny", "action": "add", "domain": "Bücher.de"}, token)).status == 303
    assert group(console.control, "7b").deny_domains == ("xn--bcher-kva.de",)
    text = await console.page("/groups/7b")
    assert '<span class="name">bücher.de</span>' in text and 'value="xn--bcher-kva.de"' in text
    assert "bücher.de" in await console.page("/lists")  # the groups' own lists, too
    # Removed by the name the page posts back, and by the name as people type it.
    assert (await console.post("/groups/7b/lists", {"list": "deny", "action": "remove", "domain": "xn--bcher-kva.de"}, token)).status == 303
    await console.post("/lists", {"list": "deny", "action": "add", "domain": "bücher.de"}, token)
    assert (await console.post("/lists", {"list": "deny", "action": "remove", "domain": "BÜCHER.de"}, token)).status == 303
    assert group(console.control, "7b").deny_domains == () and console.control.config.policy.deny_domains == ()

    pasted = {"list": "deny", "action": "add", "domain": "https://www.tiktok.com/@someone"}
    response = await console.post("/groups/7b/lists", pasted, token)
    assert response.status == 303
    assert group(console.control, "7b").deny_domains == ("www.tiktok.com",)
    assert "from the address https://www.tiktok.com/@someone" in console.control.applied[-1][2]  # the revision's comment
    text = await console.page(response.headers["Location"])
    assert "Took www.tiktok.com from the address you pasted." in text
    # The note is the console's word for this session only: a link cannot make it up.
    assert "Took" not in await console.page("/groups/7b?saved=1&took=evil.example.AAAA")
    response = await console.post("/lists", {**pasted, "domain": "tiktok.com/@someone"}, token)
    assert "Took tiktok.com from the address you pasted." in await console.page(response.headers["Location"])

    original = console.control.policy_text
    for typed, sentence in (
        ("<script>alert(1)</script>", "it may only have letters, digits, hyphens and dots"),
        ("tiktok com", "it has a space in it"),
        ("https:///@someone", "is a web address without a site name in it"),
    ):
        for path in ("/groups/7b/lists", "/lists"):
            response = await console.post(path, {"list": "allow", "action": "add", "domain": typed}, token)
            text = await response.text()
            problems = text[text.index('id="form-errors"') :][:400]
            assert response.status == 422 and sentence in problems and "policy:" not in problems, (path, typed, problems)
            assert html.escape(typed) in text  # what was typed stays in the form
    assert console.control.policy_text == original

    assert (await console.post("/overrides", {"kind": "block", "group": "7b", "domain": "https://bücher.de/x", "minutes": "30"}, token)).status == 303
    assert [o.domain for o in console.control.active_overrides()] == ["xn--bcher-kva.de"]
    assert "Block <span class=\"name\">bücher.de</span>" in await console.page("/overrides")
    assert "bücher.de" in await console.page("/check?name=https://B%C3%BCcher.de/x&group=7b")


async def test_validation_problems_are_shown_next_to_the_form_with_what_was_typed(console):
    token = await console.logged_in("ada")
    before = len(console.control.applied)
    response = await console.post(
        "/groups/7b/details", {"networks": "10.0.7.0/33\n<b>bold</b>", "revision": str(console.control.revision)}, token
    )
    assert response.status == 422
    text = await response.text()
    assert "groups.7b.networks[0]: &#39;10.0.7.0/33&#39; is not an IP address or CIDR network" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text and "<b>bold</b>" not in text
    details = text[text.index('id="details"') : text.index('id="categories"')]
    assert "errors" in details and "10.0.7.0/33" in details  # next to the form, as typed
    assert len(console.control.applied) == before
    assert await console.store.latest_revision_id() == 1


async def test_a_form_drawn_from_an_older_revision_is_not_applied(console):
    token = await console.logged_in("ada")
    stale = str(console.control.revision)
    await console.post("/groups/8c/categories", {"block": ["adult"], "revision": stale}, token)
    response = await console.post("/groups/7b/categories", {"block": [], "revision": stale}, token)
    assert response.status == 422
    assert "The policy changed (now revision 2)" in await response.text()
    assert group(console.control, "7b").block == ("adult", "games")


async def test_add_and_remove_a_group(console):
    token = await console.logged_in("ada")
    response = await console.post("/groups", {"name": "year9", "description": "Year 9", "networks": "10.0.9.0/24"}, token)
    assert response.status == 303
    assert response.headers["Location"].startswith("/groups/year9?saved=")
    assert [str(n) for n in group(console.control, "year9").networks] == ["10.0.9.0/24"]

    response = await console.post("/groups", {"name": "year9"}, token)
    assert response.status == 422 and "already" in await response.text()

    status, text = await page(console, "/groups")
    assert status == 200 and "year9" in text and "(default group)" in text

    await console.add_user("tina", "teacher", ["year9"])
    await console.control.add_override("year9", "allow", category="games", minutes=30, author="ada")
    asked = await console.post("/groups/year9/remove", {"comment": "merged into 8c"}, token)
    text = html.unescape(await asked.text())
    assert asked.status == 200 and "year9" in {g.name for g in console.control.groups()}  # asking changes nothing
    assert "Its 1 network falls to the guests rules (10.0.9.0/24)." in text
    assert "1 account can no longer see it or its reports: tina (teacher)." in text
    assert "1 override in force for it stops applying." in text
    assert 'name="comment" value="merged into 8c"' in text and 'name="confirmed" value="yes"' in text
    assert '<a href="/groups/year9" id="confirm-cancel">' in text
    response = await console.post("/groups/year9/remove", {"comment": "merged into 8c", "confirmed": "yes"}, token)
    assert response.status == 303
    assert "year9" not in {g.name for g in console.control.groups()}
    assert console.control.applied[-1][2] == "remove group year9: merged into 8c"
    assert (await console.post("/groups/guests/remove", {}, token)).status == 422


async def test_teachers_viewers_and_parents_cannot_change_policy(console):
    for name, page_status in (("tom", 403), ("vic", 200), ("pat", 403)):
        await console.client.post("/logout", allow_redirects=False)
        token = await console.logged_in(name) if name != "pat" else (await console.login("pat")) and ""
        status, text = await page(console, "/groups/7b")
        assert status == page_status, name
        if name == "vic":
            assert "<fieldset disabled>" in text and 'id="save-categories"' not in text
        for path, data in (
            ("/groups/7b/categories", {"block": ["adult"]}),
            ("/groups", {"name": "x"}),
            ("/lists", {"list": "allow", "action": "add", "domain": "x.example"}),
            ("/categories/new", {"name": "x", "description": "x", "domains": "x.example"}),
            ("/revisions/1/rollback", {}),
        ):
            response = await console.post(path, data, token)
            assert response.status == 403, (name, path)
    assert console.control.applied == []


# --- timetable --------------------------------------------------------------------------------


def test_timetable_cuts_the_week_at_every_window_edge_and_merges_equal_cells():
    lessons = ScheduleConfig("lessons", "Europe/London", {d: (("08:45", "10:45"), ("11:05", "12:25")) for d in ("mon", "tue")})
    late = ScheduleConfig("late", "Europe/London", {"sun": (("22:00", "01:00"),)})
    g = GroupConfig("7b", block=("adult", "games"), rules=(ScheduledRule("lessons", ("video",), ("games",)),))
    rows = timetable([lessons, late], g)
    assert [(r.start, r.end) for r in rows] == [
        ("00:00", "01:00"), ("01:00", "08:45"), ("08:45", "10:45"), ("10:45", "11:05"), ("11:05", "12:25"), ("12:25", "22:00"),
        ("22:00", "24:00"),
    ]  # fmt: skip
    monday = [r.cells[0] for r in rows]
    # Sunday's 22:00-01:00 runs into Monday's first hour.
    assert monday[0] == Cell(("late",), rows=1)
    assert monday[2] == Cell(("lessons",), adds=("video",), lifts=("games",), rows=1)
    assert monday[3] == Cell((), rows=1)
    # Wednesday has no windows except none: one free cell spanning the whole day.
    wednesday = [r.cells[2] for r in rows]
    assert wednesday[0] == Cell((), rows=7) and wednesday[1:] == [None] * 6
    assert rows[-1].cells[6] == Cell(("late",), rows=1)
    assert [r.cells[0].schedules for r in timetable([lessons], None) if r.cells[0]] == [("lessons",), (), ("lessons",)]


async def test_timetable_page_shows_the_windows_and_what_a_group_blocks_in_them(console):
    await console.logged_in("vic")
    status, text = await page(console, "/timetable?group=7b")
    assert status == 200
    assert "08:45–10:45" in text and "12:25–13:15" in text
    assert text.count("also blocked: video") == 2 * 5  # two lesson stretches on five days
    assert text.count("allowed: games") == 5  # lunch
    assert "−" not in text and "+ video" not in text  # words, not signs (#20 item 4)
    # Break on five days, and Saturday and Sunday as one cell each for the whole day.
    assert text.count('class="free"') == 5 + 2
    assert "INSET day" in text and "2027-02-22" in text
    status, text = await page(console, "/timetable?group=nope")
    assert status == 404
    await console.client.post("/logout", allow_redirects=False)
    await console.logged_in("tom")
    assert (await page(console, "/timetable"))[0] == 403


# --- revisions ----------------------------------------------------------------------------------


async def test_revisions_show_diffs_and_roll_back(console):
    token = await console.logged_in("ada")
    original = console.control.policy_text
    # Markup is not a domain name: refused before it reaches a revision (filterdns.names).
    refused = await console.post("/groups/7b/lists", {"list": "allow", "action": "add", "domain": "<i>x</i>.example"}, token)
    assert refused.status == 422 and console.control.policy_text == original
    form = {"list": "allow", "action": "add", "domain": "x.example", "comment": "<i>asked by</i> 7b"}
    await console.post("/groups/7b/lists", form, token)
    status, text = await page(console, "/revisions")
    assert status == 200
    assert "Revision 2" in text and "(in force)" in text
    assert "7b: add x.example to the allow list: &lt;i&gt;asked by&lt;/i&gt; 7b" in text
    assert html.escape("+    - x.example", quote=False) in text
    assert "groups.7b" in text  # the hunk says where the change is
    assert 'id="rollback-1"' in text and 'id="rollback-2"' not in text

    response = await console.post("/revisions/1/rollback", {}, token)
    assert response.status == 303
    assert response.headers["Location"] == "/revisions?rolled_back=1&saved=3"
    assert console.control.policy_text == original
    assert group(console.control, "7b").allow_domains == ()
    status, text = await page(console, "/revisions?rolled_back=1&saved=3")
    assert "Rolled back to revision 1 as revision 3" in text
    assert (await console.post("/revisions/99/rollback", {}, token)).status == 422


# --- categories and lists ------------------------------------------------------------------------


async def test_categories_page_and_a_custom_list(console):
    token = await console.logged_in("ada")
    status, text = await page(console, "/categories")
    assert status == 200
    assert 'id="category-video"' in text and "typed into the policy" in text
    local = text[text.index('id="category-local"') :]
    assert "needs attention" in local
    assert "line 2: <code>not a &lt;domain&gt; line</code>" in local  # an example of a bad line, escaped
    assert "broken.txt" in local and 'class="bad"' in local  # the unreadable file's error
    # List health: the inline video list would block the one essential name, vimeo.com.
    video = text[text.index('id="category-video"') : text.index('id="category-local"')]
    assert "needs attention" in video
    assert re.search(r'class="num essential bad">1\s*<details><summary>would block</summary>\s*<ul><li><code>vimeo.com</code>', video)
    # A category with list files is not editable here: saving the form would drop them.
    assert 'id="edit-video"' in text and 'id="edit-local"' not in text
    assert (await page(console, "/categories/local/edit"))[0] == 404

    response = await console.post(
        "/categories/new", {"name": "exam-season", "description": "Distractions in exam weeks",
                            "domains": "quizlet.example\nkahoot.example"}, token)  # fmt: skip
    assert response.status == 303
    category = next(c for c in console.control.categories() if c.name == "exam-season")
    assert category.domains == ("quizlet.example", "kahoot.example")

    for data, problem in (
        ({"name": "video", "description": "x", "domains": "a.example"}, "already"),
        ({"name": "Bad Name", "description": "x", "domains": "a.example"}, "lower-case"),
        ({"name": "empty", "description": "x"}, "needs domains or a list URL"),
        ({"name": "ftp", "description": "x", "url": "ftp://lists.example/x"}, "http"),
    ):
        response = await console.post("/categories/new", data, token)
        assert response.status == 422 and problem in await response.text(), data

    status, text = await page(console, "/categories/exam-season/edit")
    assert status == 200 and "kahoot.example" in text
    assert (await page(console, "/categories/nope/edit"))[0] == 404
    await console.post("/groups/8c/categories", {"block": ["adult", "exam-season"]}, token)
    response = await console.post("/categories/exam-season/remove", {}, token)
    assert response.status == 422  # still used by 8c: nothing to confirm, the loader says so
    assert "exam-season" in await response.text()
    unused = await console.post("/groups/8c/categories", {"block": ["adult", "video"]}, token)
    assert unused.status == 303, await unused.text()
    asked = await console.post("/categories/exam-season/remove", {}, token)
    text = await asked.text()
    assert asked.status == 200 and "No group uses it" in text and "Its 2 domains go with it." in text
    assert "exam-season" in {c.name for c in console.control.categories()}
    assert (await console.post("/categories/exam-season/remove", {"confirmed": "yes"}, token)).status == 303
    assert "exam-season" not in {c.name for c in console.control.categories()}


async def test_global_allow_and_deny_lists(console):
    token = await console.logged_in("ada")
    status, text = await page(console, "/lists")
    assert status == 200 and "school.example" in text
    assert (await console.post("/lists", {"list": "deny", "action": "add", "domain": "Bad.Example."}, token)).status == 303
    assert console.control.config.policy.deny_domains == ("bad.example",)
    assert (await console.post("/lists", {"list": "allow", "action": "remove", "domain": "school.example"}, token)).status == 303
    assert console.control.config.policy.allow_domains == ()
    response = await console.post("/lists", {"list": "allow", "action": "remove", "domain": "nothere.example"}, token)
    assert response.status == 422 and "not on the global allow list" in await response.text()


# --- review requests -------------------------------------------------------------------------------


async def test_reviews_are_approved_by_admins_and_declined_by_the_groups_teachers(console):
    store = console.store
    first = await store.add_review_request("games.example", "7b", "10.0.7.20", "for a <maths> game")
    second = await store.add_review_request("vimeo.com", "8c", "10.0.8.20", "film club")
    third = await store.add_review_request("games.example", "7b", "10.0.7.21", "please")

    token = await console.logged_in("tom")
    status, text = await page(console, "/reviews")
    assert status == 200
    assert "for a &lt;maths&gt; game" in text and "film club" not in text  # only his groups
    assert "games (category)" in text  # why it is blocked now
    assert f'id="decline-{first.id}"' in text and f'id="approve-{first.id}"' not in text
    response = await console.post(f"/reviews/{second.id}/decline", {}, token)
    assert response.status == 409  # not one of his
    response = await console.post(f"/reviews/{first.id}/approve", {}, token)
    assert response.status == 403  # a permanent allow rule is an administrator's decision
    response = await console.post(f"/reviews/{third.id}/decline", {}, token)
    assert response.status == 303 and response.headers["Location"] == "/reviews?done=declined"

    token = await console.logged_in("ada")
    response = await console.post(f"/reviews/{first.id}/approve", {}, token)
    assert response.status == 303 and response.headers["Location"] == "/reviews?done=approved"
    assert (first.id, "approved", "ada") in console.control.decided
    assert group(console.control, "7b").allow_domains == ("games.example",)
    response = await console.post(f"/reviews/{first.id}/decline", {}, token)
    assert response.status == 409  # decided already


async def test_groups_page_works_while_the_store_is_down(console, monkeypatch):
    await console.logged_in("ada")

    async def down(*args, **kwargs):
        raise StoreError("database is locked")

    monkeypatch.setattr(console.store, "query_aggregates", down)
    status, text = await page(console, "/groups")
    assert status == 200 and 'id="group-7b"' in text and "n/a" in text


# --- one-click fixes ----------------------------------------------------------------------------


async def test_an_admin_fixes_a_false_positive_from_a_link(console):
    token = await console.logged_in("ada")
    status, text = await page(console, "/check?name=games.example&group=7b")
    assert 'id="check-fix" href="/fixes?name=games.example&amp;group=7b"' in text
    status, text = await page(console, "/fixes?name=games.example&group=7b")
    assert status == 200 and "games is blocked for 7b" in text and 'id="fix-group"' in text
    refused = await console.post("/fixes", {"name": "games.example", "group": "7b", "fix": "group", "reason": ""}, token)
    assert refused.status == 422 and "say why" in await refused.text()
    response = await console.post(
        "/fixes", {"name": "games.example", "group": "7b", "fix": "group", "reason": "used in maths"}, token
    )
    assert response.status == 303 and response.headers["Location"] == f"/revisions?saved={console.control.revision}"
    text, author, comment = console.control.applied[-1]
    assert yaml.safe_load(text)["groups"]["7b"]["allow"] == ["games.example"]
    assert (author, comment) == ("ada", "allow games.example for 7b: used in maths")
    assert (await console.store.list_audit())[0].action == "fix.allow"
    wrong = await console.post(
        "/fixes", {"name": "vimeo.example", "group": "7b", "fix": "essential", "reason": "misfiled by the list"}, token
    )
    assert wrong.status == 303
    assert yaml.safe_load(console.control.applied[-1][0])["essential_extra"] == ["vimeo.com", "vimeo.example"]


async def test_check_names_the_list_that_lists_a_name(console):
    await console.logged_in("ada")
    status, text = await page(console, "/check?name=www.local.example&group=7b")
    assert status == 200 and "Listed (as local.example) in: local (The school&#39;s own list), by local.txt." in text


async def test_only_admins_see_and_use_the_fixes(console):
    token = await console.logged_in("tom")
    status, text = await page(console, "/check?name=games.example&group=7b")
    assert status == 200 and 'id="check-fix"' not in text
    assert (await page(console, "/fixes?name=games.example&group=7b"))[0] == 403
    response = await console.post("/fixes", {"name": "games.example", "group": "7b", "fix": "group", "reason": "x"}, token)
    assert response.status == 403


async def test_check_says_what_the_schedule_does_for_the_rest_of_the_day(console):
    """#20 item 4: games is blocked for 7b always but its lunch rule allows it, so "at all
    times" is not what staff should read during a lesson."""
    await console.logged_in("vic")

    async def first_line(name: str, at: str) -> str:
        text = await console.page(f"/check?name={name}&group=7b&at={at}")
        lines = re.findall(r"<li>(.*?)</li>", text[text.index('id="explanation-lines"') :])
        return html.unescape(lines[0])

    assert await first_line("games.example", "2027-03-02T10:00") == (
        "Blocked: games is blocked for 7b now (until 12:25), allowed during lunch (12:25–13:15), blocked again from 13:15."
    )
    assert await first_line("youtube.com", "2027-03-02T10:00") == (
        "Blocked: video is blocked for 7b now during lessons (until 10:45), allowed (10:45–11:05), "
        "blocked during lessons (11:05–12:25), allowed again from 12:25."
    )
    assert await first_line("games.example", "2027-03-02T12:30") == (
        "Allowed: games is allowed for 7b now during lunch (until 13:15), blocked from 13:15."
    )
    assert await first_line("games.example", "2027-03-06T10:00") == (  # a Saturday
        "Blocked: games is blocked for 7b now for the rest of the day; lunch allows it on other days."
    )
    # Blocked always, and no rule lifts it: "at all times" is the truth.
    assert await first_line("adult.example", "2027-03-02T10:00") == "Blocked: adult is blocked for 7b at all times."


async def test_staff_read_times_on_the_schools_clock_when_only_the_schedules_name_it(console):
    """#20 item 4: a policy that names its zone on the schedules only (the top-level
    timezone left at UTC) shows the query log on the schedules' clock, not UTC."""
    text = POLICY.replace("timezone: Europe/London\n", "").replace(
        "  lessons:\n", "  lessons:\n    timezone: Europe/London\n").replace("  lunch:\n", "  lunch:\n    timezone: Europe/London\n")
    console.control._use(document.render(yaml.safe_load(text)))
    assert console.control.config.policy.timezone == "UTC"
    summer = datetime(2026, 6, 2, 9, 15, tzinfo=UTC).timestamp()  # 10:15 in London (BST)
    await console.store.insert_events([support.event("zone.example", t=summer)])
    await console.logged_in("vic")
    page_text = await console.page("/querylog?domain=zone.example&since=2026-06-01T00:00&until=2026-06-03T00:00")
    assert "2026-06-02 10:15" in page_text and "2026-06-02 09:15" not in page_text


async def test_removing_a_scheduled_rule_asks_first_and_says_what_it_did(console):
    """#20 item 5: ticking "Remove this rule" and saving shows what the rule did and keeps
    the whole form (the other rules' edits too) for the confirming button."""
    token = await console.logged_in("ada")
    form = {"rule-0-during": "lessons", "rule-0-block": ["video", "games"], "rule-1-during": "lunch",
            "rule-1-allow": "games", "rule-1-remove": "1", "revision": str(console.control.revision)}  # fmt: skip
    asked = await console.post("/groups/7b/rules", form, token)
    text = html.unescape(await asked.text())
    assert asked.status == 200 and "Remove 1 of 7b's rules?" in text
    assert "Rule 2 goes: during lunch it allows games for 7b" in text
    assert len(group(console.control, "7b").rules) == 2  # asking changes nothing
    assert text.count('name="rule-0-block"') == 2 and 'name="rule-1-remove" value="1"' in text  # every field again
    response = await console.post("/groups/7b/rules", {**form, "confirmed": "yes"}, token)
    assert response.status == 303
    assert group(console.control, "7b").rules == (ScheduledRule("lessons", ("video", "games")),)
    # Saving rules without removing one needs no second step.
    assert (await console.post("/groups/7b/rules", {"rule-0-during": "lessons", "rule-0-block": "video"}, token)).status == 303
