"""The block page over real HTTP on loopback: plain words, escaped Host, review requests
stored through the store, rate limiting, security headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from filterdns.config.model import BlockingConfig, Config, GroupConfig
from filterdns.policy.engine import Decision
from filterdns.policy.explanation import Explanation
from filterdns.policy.schedule import Window
from filterdns.store import Store, StoreConfig, open_store
from filterdns.web.blockpage import RateLimiter, client_address, site_name, start_blockpage

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
LESSON = Window("lessons", "Tue 08:45-10:45", NOW, NOW)


class FakeControl:
    """The two Control methods the block page uses, over a real store, and the config."""

    def __init__(self, store: Store):
        self.store = store
        self.explained: list[tuple[str, str | None]] = []
        self.blocking = BlockingConfig()
        self.config = Config().with_policy(groups=(GroupConfig("year8", description="Year 8 pupils"),))

    def explain(self, name: str, *, group=None, client=None, mac=None, at=None) -> Explanation:
        self.explained.append((name, client))
        if name.endswith("tiktok.com"):
            decision = Decision(
                "block", "scheduled-category", "year8", "blockpage", category="social",
                schedule_window=LESSON.label, detail="",
            )
            windows: tuple[Window, ...] = (LESSON,)
        elif name == "abuse.example":
            decision = Decision("block", "locked", "year8", "blockpage", category="illegal", detail="")
            windows = ()
        elif name == "open.example":
            decision, windows = Decision("allow", "default", "year8", "blockpage"), ()
        else:
            decision = Decision("block", "deny-list", "year8", "blockpage", detail="")
            windows = ()
        return Explanation(
            name=name, group="year8", at=NOW, listings=(), list_entries=(), blocked_categories=("social",),
            windows=windows, decision=decision,
            descriptions={"social": "Social networks & <video> sharing sites."},
        )

    async def request_review(self, name: str, client: str, reason: str):
        return await self.store.add_review_request(name, "year8", client, reason)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(StoreConfig(), tmp_path)
    yield store
    await store.close()


@pytest.fixture
async def page(store: Store) -> AsyncIterator[tuple[str, FakeControl]]:
    control = FakeControl(store)
    runner = await start_blockpage(control, "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", control
    await runner.cleanup()


async def fetch(url: str, host: str, *, data: dict | None = None, language: str = "") -> tuple[int, str, dict]:
    headers = {"Host": host, **({"Accept-Language": language} if language else {})}
    async with aiohttp.ClientSession() as session:
        method = session.post if data is not None else session.get
        async with method(url, headers=headers, data=data, allow_redirects=False) as response:
            return response.status, await response.text(), dict(response.headers)


async def test_page_says_what_was_blocked_and_why(page):
    url, control = page
    status, html, headers = await fetch(f"{url}/some/path?q=1", "www.tiktok.com:80")
    assert status == 403
    assert "This site is blocked at school" in html
    assert "www.tiktok.com" in html
    # The group and the category as people know them, never their keys.
    assert "<dd>Year 8 pupils</dd>" in html and "<dd>Social networks</dd>" in html
    assert "year8" not in html and ">social<" not in html
    assert "which is blocked for Year 8 pupils during lessons (Tue 08:45-10:45)" in html
    # The category's plain-language description, escaped like everything else.
    assert "Social networks &amp; &lt;video&gt; sharing sites." in html
    assert 'name="reason"' in html and 'maxlength="500"' in html
    assert control.explained == [("www.tiktok.com", "127.0.0.1")]
    assert "script-src" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert "<script" not in html


async def test_a_locked_category_gets_the_standard_text_and_no_review_form(page):
    url, _ = page
    status, html, _ = await fetch(url, "abuse.example")
    assert status == 403
    assert "may contain material that is illegal in the UK" in html
    assert "cannot be lifted by anyone at the school" in html
    assert "report.iwf.org.uk" in html
    assert 'name="reason"' not in html


async def test_the_page_speaks_the_browsers_language_else_the_schools(page):
    url, control = page
    status, html, _ = await fetch(f"{url}/x", "www.tiktok.com", language="pt-BR,pt;q=0.9")
    assert status == 403 and '<html lang="pt-BR">' in html
    assert "Este site está bloqueado na escola" in html and "<dt>Seu grupo</dt><dd>Year 8 pupils</dd>" in html
    assert "Ele está na categoria “Redes sociais”, bloqueada para Year 8 pupils durante as aulas (Tue 08:45-10:45)." in html
    assert "Pedir revisão" in html and "This site is blocked" not in html
    _, html, _ = await fetch(url, "nothing.example", data={"reason": ""}, language="pt-BR")
    assert "Diga por que você precisa deste site." in html
    _, html, _ = await fetch(url, "www.tiktok.com", language="de")
    assert '<html lang="en">' in html
    control.config = control.config.with_node(reports=replace(control.config.node.reports, language="pt-BR"))
    _, html, _ = await fetch(url, "www.tiktok.com", language="de")
    assert '<html lang="pt-BR">' in html
    _, html, _ = await fetch(url, "abuse.example")
    assert "material ilegal no Brasil" in html and "new.safernet.org.br/denuncie" in html and "iwf" not in html


async def test_a_hostile_host_header_is_escaped(page):
    url, _ = page
    status, html, _ = await fetch(url, '<script>alert("x")</script>.example')
    assert status == 403
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.example" in html
    assert "The school has put it on its list of blocked sites." in html


async def test_name_that_is_no_longer_blocked_and_the_bare_address(page):
    url, _ = page
    _, html, _ = await fetch(url, "open.example")
    assert "not blocked for you right now" in html
    _, html, _ = await fetch(url, url.removeprefix("http://"))
    assert "School web filter" in html and 'name="reason"' not in html


async def test_review_request_is_stored_and_thanked(page, store):
    url, _ = page
    status, html, headers = await fetch(f"{url}/watch", "www.tiktok.com", data={"reason": "Media studies <homework>"})
    assert status == 200
    assert "Thank you" in html and "www.tiktok.com" in html
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    [request] = await store.list_review_requests(status="pending")
    assert (request.name, request.client, request.reason) == ("www.tiktok.com", "127.0.0.1", "Media studies <homework>")


async def test_review_request_needs_a_reason_of_sensible_length(page, store):
    url, _ = page
    status, html, _ = await fetch(url, "www.tiktok.com", data={"reason": "   "})
    assert status == 400 and "Please say why" in html
    status, html, _ = await fetch(url, "www.tiktok.com", data={"reason": "x" * 501})
    assert status == 400 and "under 500 characters" in html
    status, _, _ = await fetch(url, "10.10.0.5", data={"reason": "please"})
    assert status == 400
    assert await store.list_review_requests() == []


async def test_review_requests_are_rate_limited_per_client(page, store):
    url, _ = page
    statuses = [(await fetch(url, "www.tiktok.com", data={"reason": f"try {i}"}))[0] for i in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    assert len(await store.list_review_requests()) == 5


def test_rate_limiter_window_slides_and_forgets_old_clients():
    now = [0.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0], max_keys=2)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    now[0] = 59.0
    assert not limiter.allow("a")
    now[0] = 60.5
    assert limiter.allow("a")  # the first two have left the window
    limiter.allow("b")
    limiter.allow("c")  # "a" is now the least recently seen of three: forgotten
    assert limiter.allow("a") and limiter.allow("a")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("WWW.Example.COM.", "www.example.com"),
        ("example.com:8080", "example.com"),
        ("[fd00::5]:80", "fd00::5"),
        ("", ""),
        ("a" * 400, "a" * 253),
    ],
)
def test_site_name_from_host_header(header, name):
    assert site_name(header) == name


async def test_stylesheet_is_served_with_any_host(page):
    url, _ = page
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/_filterdns/blockpage.css", headers={"Host": "x.example"}) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/css"
        assert re.search(r"\.card\s*\{", await response.text())


async def test_oversized_posts_are_refused_before_reaching_the_store(page, store):
    url, _ = page
    status, _, headers = await fetch(url, "www.tiktok.com", data={"reason": "x" * 100_000})
    assert status == 413
    assert headers["X-Frame-Options"] == "DENY"
    assert await store.list_review_requests() == []


class _Transport:
    def __init__(self, peer: tuple):
        self.peer = peer

    def get_extra_info(self, name: str, default=None):
        return self.peer if name == "peername" else default


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        (("::ffff:10.0.7.5", 80, 0, 0), "10.0.7.5"),  # IPv4 client of a listener on [::]
        (("fd00:7::5", 80, 0, 0), "fd00:7::5"),
        (("10.0.7.5", 80), "10.0.7.5"),
    ],
)
def test_client_address_unmaps_ipv4_clients_of_an_ipv6_listener(peer, address):
    assert client_address(make_mocked_request("GET", "/", transport=_Transport(peer))) == address
