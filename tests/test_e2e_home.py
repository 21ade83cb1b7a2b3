"""Take-home devices end to end (#19): a real ``filterdns serve`` with DoH and its console, a
pupil's id asked from one of the school's networks and from "home", and the pupil's parent
setting a bedtime on the family page. Loopback plays both places: the school's networks are
127.0.0.0/25 and home is 127.0.0.200. The bedtime is set around the current time (blocks)
and then away from it (allows); the engine's own clock is tested at 22:00 and 08:00 in
tests/test_home_policy.py."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import dns.message
import dns.query
import pytest

from tests.support.browser import Site, running_site, store_call
from tests.support.tls import Pki, make_pki
from tests.test_e2e_encrypted_dns import BLOCKED, ROSTER, YEAR7, addresses, school_config, tls_context

SCHOOL_SIDE, HOME = YEAR7, "127.0.0.200"
PASSWORD = "correct horse battery staple"
PARENT, OTHER_PARENT = "ana@example.org", "bo@example.org"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(pki, tmp_path_factory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("home")
    (workdir / "data").mkdir()
    (workdir / "data" / "roster.csv").write_text(ROSTER)

    def config(port: int) -> dict:
        made = school_config(port, pki, school_networks=["127.0.0.0/25"], web={"listen": "127.0.0.1:0"})
        made["categories"]["adult"] = {"domains": ["porn.test"]}
        return made

    accounts = [(PARENT, "parent", "year7"), (OTHER_PARENT, "parent", "year7"), ("ada", "admin", "")]
    with running_site(workdir, config, accounts, PASSWORD) as running:
        running.server.doh = running.server.encrypted_port("HTTPS")
        for parent in (PARENT, OTHER_PARENT):
            store_call(running, "save_parent_profile", parent, [("Ann", "year7")] if parent == PARENT else [])
        store_call(running, "set_parent_pupils", PARENT, ["p-101"])
        yield running


def ask(site: Site, pki: Pki, name: str, source: str, pupil: str = "p-101") -> list[str]:
    query = dns.message.make_query(name, "A")
    response = dns.query.https(
        query, "127.0.0.1", port=site.server.doh, path=f"/dns-query/{pupil}", source=source,
        verify=tls_context(pki), timeout=5, http_version=dns.query.HTTPVersion.H2,
    )  # fmt: skip
    return addresses(response)


async def family(session: aiohttp.ClientSession, base: str, name: str) -> tuple[str, str]:
    """Log in through the family form; returns the family page and its CSRF token."""
    page = await (await session.get(f"{base}/family/login")).text()
    response = await session.post(
        f"{base}/family/login", allow_redirects=False,
        data={"username": name, "password": PASSWORD, "csrf_token": _CSRF.search(page).group(1), "next": "/family"},
    )  # fmt: skip
    assert response.status == 303, await response.text()
    page = await (await session.get(f"{base}/family")).text()
    return page, _CSRF.search(page).group(1)


def test_at_home_lesson_rules_do_not_apply_and_adult_stays_blocked(site, pki) -> None:
    assert ask(site, pki, "www.tiktok.com", SCHOOL_SIDE) == [BLOCKED]  # in a lesson, at school
    assert ask(site, pki, "www.tiktok.com", HOME) != [BLOCKED]
    assert ask(site, pki, "porn.test", HOME) == [BLOCKED]  # the home floor...
    assert ask(site, pki, "porn.test", SCHOOL_SIDE) != [BLOCKED]  # ...though year7 here does not block it


def _window(around: bool) -> dict[str, str]:
    """A bedtime in UTC (the school's zone here) holding now, or one that does not."""
    now = datetime.now(UTC)
    start = now - timedelta(hours=1) if around else now + timedelta(hours=2)
    return {"bedtime_start": f"{start:%H:%M}", "bedtime_end": f"{start + timedelta(hours=2):%H:%M}"}


async def test_a_parents_bedtime_applies_at_home_only_and_cannot_loosen(site, pki) -> None:
    base = site.server.console_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        page, token = await family(session, base, PARENT)
        assert 'id="home-p-101"' in page and 'value="adult"' not in page  # the floor is not offered
        response = await session.post(
            f"{base}/family/home/p-101", data={"csrf_token": token, "block": "games", **_window(True)}, allow_redirects=False
        )
        assert response.status == 303
        assert ask(site, pki, "example.org", HOME) == [BLOCKED]  # bedtime: everything is blocked
        assert ask(site, pki, "example.org", SCHOOL_SIDE) != [BLOCKED]  # not at school
        deadline = time.monotonic() + 10  # the parent's week at home, once the event is stored
        while 'id="home-sites-p-101">example.org (1)' not in (page := await (await session.get(f"{base}/family")).text()):
            assert time.monotonic() < deadline, page
            await asyncio.sleep(0.3)
        response = await session.post(
            f"{base}/family/home/p-101", data={"csrf_token": token, **_window(False)}, allow_redirects=False
        )
        assert response.status == 303
        assert ask(site, pki, "example.org", HOME) != [BLOCKED]
        assert ask(site, pki, "porn.test", HOME) == [BLOCKED]  # a parent's save lifts nothing of the floor
        response = await session.post(f"{base}/family/home/p-101", data={"csrf_token": token, "allow": "adult"})
        assert ask(site, pki, "porn.test", HOME) == [BLOCKED]
    history = store_call(site, "home_settings_history", "p-101")
    assert [r.author for r in history] == [PARENT] * 3 and history[-1].settings["block"] == ["games"]
    assert any(e.action == "home.settings" and e.target == "p-101" for e in store_call(site, "list_audit"))


async def test_another_parent_sees_none_of_it_and_the_school_sees_it_all(site, pki) -> None:
    base = site.server.console_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        page, token = await family(session, base, OTHER_PARENT)
        assert "home-p-101" not in page and "Ann" not in page and "example.org" not in page
        response = await session.post(f"{base}/family/home/p-101", data={"csrf_token": token, "pause": "60"})
        assert response.status == 400
    assert ask(site, pki, "example.org", HOME) != [BLOCKED]  # no pause was set
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        page = await (await session.get(f"{base}/login")).text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        await session.post(f"{base}/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token})
        listing = await (await session.get(f"{base}/home-settings")).text()
        assert 'id="home-p-101"' in listing and PARENT in listing
