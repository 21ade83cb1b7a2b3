"""What a teacher can never lift, through the whole product: a real ``filterdns serve`` with its
console, a teacher's account made with ``filterdns user add``, and real DNS queries from a
Year 7 address. Every path a teacher (or a pupil on the block page) has to allow a name is
tried: an override for a public suffix (``com``, ``net``) or for a domain with a protected site
below it, by the API and by the console's form, a category override, a review request and its
approval, and a group allow entry. The adult and self-harm names stay blocked after each."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import aiohttp
import dns.message
import dns.query
import pytest

from tests.support.browser import Site, running_site, store_call
from tests.support.server import base_config

PUPIL = "127.0.0.7"
PASSWORD = "correct horse battery staple"
PROTECTED_NAMES = ("www.pornhub.com", "sanctioned-suicide.net", "adult.sites.example.org")
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def school(upstream_port: int) -> dict:
    return base_config(
        upstream_port,
        categories={
            "adult": {"domains": ["pornhub.com", "adult.sites.example.org"]},
            "self-harm": {"domains": ["sanctioned-suicide.net"]},
            "social": {"domains": ["tiktok.com", "instagram.com"]},
            "games": {"domains": ["games.example"]},
        },
        groups={"year7": {"networks": ["127.0.0.0/8"], "block": ["adult", "self-harm", "social"]}},
        deny=["blocked-by-the-school.example"],
        web={"listen": "127.0.0.1:0", "blockpage_listen": "127.0.0.1:0"},
    )


def answer(site: Site, name: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=site.server.port, timeout=3, source=PUPIL)
    return [rr.to_text() for rrset in response.answer for rr in rrset]


def assert_still_blocked(site: Site) -> None:
    for name in PROTECTED_NAMES + ("blocked-by-the-school.example", "use-application-dns.net"):
        response = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=site.server.port, timeout=3, source=PUPIL)
        addresses = [rr.to_text() for rrset in response.answer for rr in rrset]
        assert addresses in ([], ["0.0.0.0"]), (name, addresses)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("school")
    with running_site(workdir, school, [("tess", "teacher", "year7"), ("ada", "admin", "")], PASSWORD) as site:
        yield site


async def logged_in(session: aiohttp.ClientSession, base: str, name: str) -> str:
    """Log in through the console's form; returns the session's CSRF token."""
    page = await (await session.get(f"{base}/login")).text()
    token = _CSRF.search(page).group(1)
    response = await session.post(
        f"{base}/login", data={"username": name, "password": PASSWORD, "csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return _CSRF.search(await (await session.get(f"{base}/")).text()).group(1)


async def test_no_override_a_teacher_can_make_unblocks_a_protected_site(site: Site):
    base = site.server.console_url
    assert_still_blocked(site)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        token = await logged_in(session, base, "tess")
        api = {"X-CSRF-Token": token}
        for domain in ("com", "net", "org", "co.uk", "github.io", "example.org", "sites.example.org", "pornhub.com",
                       "www.pornhub.com", "sanctioned-suicide.net", "blocked-by-the-school.example",
                       "use-application-dns.net"):  # fmt: skip
            response = await session.post(
                f"{base}/api/v1/overrides",
                json={"group": "year7", "kind": "allow", "domain": domain, "minutes": 15},
                headers=api,
            )
            assert response.status == 400, (domain, response.status, await response.text())
            assert "administrator" in (await response.json())["error"], domain
            # the console's form takes the same path
            response = await session.post(
                f"{base}/overrides",
                data={"group": "year7", "kind": "allow", "domain": domain, "minutes": "15", "csrf_token": token},
                allow_redirects=False,
            )
            assert response.status == 422, (domain, response.status)
            assert_still_blocked(site)
        for category in ("adult", "self-harm"):
            response = await session.post(
                f"{base}/api/v1/overrides",
                json={"group": "year7", "kind": "allow", "category": category, "minutes": 15},
                headers=api,
            )
            assert response.status == 400, category
        # a group allow entry or a whole policy is an administrator's change
        response = await session.post(
            f"{base}/groups/year7/allow", data={"add": "com", "csrf_token": token}, allow_redirects=False
        )
        assert response.status == 403
        response = await session.put(f"{base}/api/v1/policy", data="groups: {year7: {allow: [com]}}", headers=api)
        assert response.status == 403
        assert_still_blocked(site)
        # an override that is fine still works, and lifts exactly what it names
        assert answer(site, "www.tiktok.com") == ["0.0.0.0"]
        response = await session.post(
            f"{base}/api/v1/overrides",
            json={"group": "year7", "kind": "allow", "domain": "tiktok.com", "minutes": 15},
            headers=api,
        )
        assert response.status == 201, await response.text()
        assert answer(site, "www.tiktok.com") != ["0.0.0.0"]
        assert_still_blocked(site)
        # a category block override changes the DNS answer at once
        assert answer(site, "play.games.example") != ["0.0.0.0"]
        response = await session.post(
            f"{base}/api/v1/overrides",
            json={"group": "year7", "kind": "block", "category": "games", "minutes": 15},
            headers=api,
        )
        assert response.status == 201, await response.text()
        assert answer(site, "play.games.example") == ["0.0.0.0"]


def block_page_url(site: Site) -> str:
    for line in site.server.log_lines:
        if match := re.search(r"block page on (http://[^/\s]+)/", line):
            return match.group(1)
    raise AssertionError("no block page in the log")


async def test_a_review_request_for_a_public_suffix_cannot_be_made(site: Site):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for host in ("com", "net", "co.uk"):
            response = await session.post(
                f"{block_page_url(site)}/", data={"reason": "I need it for homework"}, headers={"Host": host}
            )
            assert response.status == 400, host
        response = await session.post(
            f"{block_page_url(site)}/", data={"reason": "I need it for homework"}, headers={"Host": "www.tiktok.com"}
        )
        assert response.status == 200
    pending = store_call(site, "list_review_requests", status="pending")
    assert [r.name for r in pending] == ["www.tiktok.com"]
    assert_still_blocked(site)


def test_overrides_that_reach_the_store_by_another_way_lift_nothing_protected(site: Site):
    """Defence in depth: overrides written straight into the shared store (an older node, a
    restored backup) are applied by the server's sync, and the engine itself still keeps the
    protected categories, the global deny list and bypass protection."""
    expires = time.time() + 600
    for domain in ("com", "net", "org", "example", "use-application-dns.net", "blocked-by-the-school.example"):
        store_call(site, "add_override", "year7", "allow", domain=domain, created_by="old-node", expires_at=expires)
    store_call(site, "add_override", "year7", "allow", category="adult", created_by="old-node", expires_at=expires)
    deadline = time.monotonic() + 10
    while answer(site, "www.instagram.com") == ["0.0.0.0"]:  # the "com" override has been synced
        assert time.monotonic() < deadline, "the stored overrides never reached the server"
        time.sleep(0.1)
    assert_still_blocked(site)
