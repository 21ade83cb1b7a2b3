"""Take-home devices end to end (#19): a real ``filterdns serve`` with DoH, a pupil's id asked
from one of the school's networks and from "home". Loopback plays both: the school's
networks are 127.0.0.0/25 and home is 127.0.0.200."""

from __future__ import annotations

import dns.message
import dns.query
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import FilterDnsProcess
from tests.support.tls import Pki, make_pki
from tests.test_e2e_encrypted_dns import BLOCKED, ROSTER, YEAR7, addresses, school_config, tls_context

SCHOOL_SIDE, HOME = YEAR7, "127.0.0.200"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("home")
    (workdir / "data").mkdir()
    (workdir / "data" / "roster.csv").write_text(ROSTER)
    config = school_config(upstream.port, pki, school_networks=["127.0.0.0/25"])
    config["categories"]["adult"] = {"domains": ["porn.test"]}
    with FilterDnsProcess(config, workdir) as process:
        process.doh = process.encrypted_port("HTTPS")
        yield process


def ask(server, pki, name: str, source: str, pupil: str = "p-101") -> list[str]:
    query = dns.message.make_query(name, "A")
    response = dns.query.https(
        query, "127.0.0.1", port=server.doh, path=f"/dns-query/{pupil}", source=source,
        verify=tls_context(pki), timeout=5, http_version=dns.query.HTTPVersion.H2,
    )
    return addresses(response)


def test_at_home_lesson_rules_do_not_apply_and_adult_stays_blocked(server, pki) -> None:
    assert ask(server, pki, "www.tiktok.com", SCHOOL_SIDE) == [BLOCKED]  # in a lesson, at school
    assert ask(server, pki, "www.tiktok.com", HOME) != [BLOCKED]
    assert ask(server, pki, "porn.test", HOME) == [BLOCKED]  # the home floor...
    assert ask(server, pki, "porn.test", SCHOOL_SIDE) != [BLOCKED]  # ...though year7 here does not block it
