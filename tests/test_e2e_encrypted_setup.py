"""The console's encrypted DNS page against a real ``filterdns serve``: an admin imports the
roster (used at once over DoH), sees it by group, and gets each pupil's set-up (ChromeOS
policy, Apple profile, Windows commands, Android name); teachers get none of it."""

from __future__ import annotations

import plistlib
from collections.abc import Iterator

import aiohttp
import dns.message
import dns.query
import pytest

from tests.support.browser import Site, running_site, store_call
from tests.support.server import base_config
from tests.support.tls import HOSTNAME, Pki, make_pki
from tests.test_e2e_encrypted_dns import addresses, tls_context
from tests.test_e2e_teacher_limits import PASSWORD, logged_in

ROSTER = (b"pupil_id,display_name,group,email,device_ids\n"
          b"p-101,Ann Example,year7,ann@school.test,cb-17\nt-1,Tess Teacher,staff,tess@school.test,\n")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory, pki: Pki) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("encrypted-setup")

    def school(upstream_port: int) -> dict:
        return base_config(
            upstream_port,
            categories={"social": {"domains": ["tiktok.com"]}},
            groups={"staff": {"networks": ["127.0.0.1/32"]}, "year7": {"block": ["social"]}},
            default_group="staff",
            web={"listen": "127.0.0.1:0"},
            doh={"listen": ["127.0.0.1:0"], "tls_cert": str(pki.cert), "tls_key": str(pki.key)},
            identity={"hostname": HOSTNAME, "salt": "riverside-2026", "addresses": ["192.0.2.53"]},
        )

    with running_site(workdir, school, [("ada", "admin", ""), ("tess", "teacher", "year7")], PASSWORD) as site:
        yield site


def over_doh(site: Site, pki: Pki, path: str) -> list[str]:
    query = dns.message.make_query("www.tiktok.com", "A")
    port = site.server.encrypted_port("HTTPS")
    response = dns.query.https(query, "127.0.0.1", port=port, path=path, verify=tls_context(pki), timeout=5)
    return addresses(response)


async def upload(session: aiohttp.ClientSession, base: str, token: str, content: bytes) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("csrf_token", token)
    form.add_field("roster", content, filename="roster.csv", content_type="text/csv")
    return await session.post(f"{base}/encrypted-dns/roster", data=form, allow_redirects=False)


async def test_an_admin_imports_the_roster_and_gets_each_pupils_set_up(site: Site, pki: Pki) -> None:
    base = site.server.console_url
    assert over_doh(site, pki, "/dns-query/t-1") == ["0.0.0.0"]  # unknown id: the strictest pupil group
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        token = await logged_in(session, base, "ada")
        bad = await upload(session, base, token, b"pupil_id,group\np-1,nope\n")
        assert bad.status == 422 and "line 2: unknown group" in await bad.text()
        done = await upload(session, base, token, ROSTER)
        assert done.status == 303 and done.headers["Location"] == "/encrypted-dns?imported=2"
        page = await (await session.get(f"{base}/encrypted-dns?group=year7")).text()
        assert "Ann Example" in page and "DnsOverHttpsTemplatesWithIdentifiers" in page
        details = await (await session.get(f"{base}/encrypted-dns?id=p-101")).text()
        assert f"p-101.{HOSTNAME}" in details
        assert f"netsh dns add encryption server=192.0.2.53 dohtemplate=https://{HOSTNAME}/dns-query/p-101" in details
        profile = await session.get(f"{base}/encrypted-dns/profile?id=p-101")
        assert profile.headers["Content-Type"] == "application/x-apple-aspen-config"
        [payload] = plistlib.loads(await profile.read())["PayloadContent"]
        assert payload["DNSSettings"]["ServerURL"] == f"https://{HOSTNAME}/dns-query/p-101"
        assert (await session.get(f"{base}/encrypted-dns/profile?id=nobody")).status == 404
    # In use at once: the teacher's id now names the staff group, the pupil's device year 7.
    assert over_doh(site, pki, "/dns-query/t-1") != ["0.0.0.0"]
    assert over_doh(site, pki, "/dns-query/cb-17") == ["0.0.0.0"]
    entries = store_call(site, "list_audit", limit=20)
    assert any(e.action == "roster.import" and e.actor == "ada" and e.detail == {"entries": 2} for e in entries)


async def test_teachers_get_no_encrypted_dns_page(site: Site) -> None:
    base = site.server.console_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await logged_in(session, base, "tess")
        assert (await session.get(f"{base}/encrypted-dns", allow_redirects=False)).status == 403
        assert (await session.get(f"{base}/encrypted-dns/profile?id=p-101", allow_redirects=False)).status == 403
