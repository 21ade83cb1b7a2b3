"""End to end: the filtering policy as a client sees it, from a real filterdns process.

Groups are told apart by the query's source address (all of 127.0.0.0/8 is local):
127.0.0.1 staff, .2 year7, .3 year8, .4 a blockpage group, .5 a refused group. Categories are
inline domain lists, and the scheduled rules use windows built around the current UTC time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.fake_upstream import Behaviour, FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config

STAFF, YEAR7, YEAR8, BLOCKPAGE, REFUSED = (f"127.0.0.{i}" for i in range(1, 6))
PAGE_V4, PAGE_V6 = "192.0.2.80", "2001:db8::80"
EDE_BLOCKED, EDE_FILTERED = 15, 17


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def windows_around(now: datetime) -> tuple[str, str]:
    """(a daily window open now, one closed now), each with an hour or more to spare so that
    the test cannot straddle a boundary; near midnight the open one crosses midnight."""
    minutes = now.hour * 60 + now.minute
    if 90 <= minutes <= 1350:
        open_now = f"{_clock(minutes - 60)}-{_clock(minutes + 60)}"
    else:
        open_now = "22:00-02:00"
    closed_now = "01:00-02:00" if 360 <= minutes < 1080 else "13:00-14:00"
    return open_now, closed_now


def policy_config(upstream_port: int, *, year8_block: tuple[str, ...] = ("social",)) -> dict:
    open_now, closed_now = windows_around(datetime.now(UTC))
    return base_config(
        upstream_port,
        timezone="UTC",
        categories={
            "social": {"domains": ["tiktok.test", "instagram.test"]},
            "games": {"domains": ["roblox.test"]},
            "chat": {"domains": ["discord.test"]},
        },
        schedules={
            "open-now": {"timezone": "UTC", "weekly": {"daily": [open_now]}},
            "closed-now": {"timezone": "UTC", "weekly": {"daily": [closed_now]}},
        },
        groups={
            "staff": {"networks": [f"{STAFF}/32"], "bypass_protection": False},
            "year7": {
                "networks": [f"{YEAR7}/32"],
                "block": ["social"],
                "rules": [{"during": "open-now", "block": ["games"]}, {"during": "closed-now", "block": ["chat"]}],
                "allow": ["learn.tiktok.test"],
                "safe_search": {"search": True, "youtube": "strict"},
            },
            "year8": {
                "networks": [f"{YEAR8}/32"],
                "block": list(year8_block),
                "block_mode": "nxdomain",
                "safe_search": {"search": True, "youtube": "moderate"},
            },
            "pages": {"networks": [f"{BLOCKPAGE}/32"], "block": ["social"], "block_mode": "blockpage"},
            "refusing": {"networks": [f"{REFUSED}/32"], "block": ["social"], "block_mode": "refused"},
        },
        default_group="staff",
        allow=["news.instagram.test"],
        deny=["evil.test"],
        blocking={"mode": "null_ip", "ttl": 60, "page_ipv4": PAGE_V4, "page_ipv6": PAGE_V6},
    )


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        fake.set_rule("innocent.test", Behaviour(cname_to="cdn.tiktok.test"))
        yield fake


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    with FilterDnsProcess(policy_config(upstream.port), tmp_path_factory.mktemp("policy")) as process:
        yield process


def ask(server, name: str, rdtype: str = "A", *, source: str = STAFF, use_edns: int | bool = 0) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=use_edns)
    return dns.query.udp(query, "127.0.0.1", port=server.port, source=source, timeout=3, ignore_trailing=False)


def records(response: dns.message.Message) -> list[tuple[str, str, str]]:
    """(owner, type, data) of every answer record."""
    return [
        (rrset.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rrset.rdtype), rr.to_text())
        for rrset in response.answer
        for rr in rrset
    ]


def addresses(response: dns.message.Message) -> list[str]:
    return [data for _, rdtype, data in records(response) if rdtype in ("A", "AAAA")]


def ede(response: dns.message.Message) -> tuple[int, str] | None:
    errors = response.extended_errors()
    assert len(errors) <= 1
    return (errors[0].code, errors[0].text) if errors else None


# --------------------------------------------------------------------------- block modes


def test_null_ip_block_with_ede_naming_category_and_group(server, upstream):
    a = ask(server, "www.tiktok.test", source=YEAR7)
    aaaa = ask(server, "www.tiktok.test", "AAAA", source=YEAR7)
    mx = ask(server, "www.tiktok.test", "MX", source=YEAR7)
    assert addresses(a) == ["0.0.0.0"] and addresses(aaaa) == ["::"]
    assert mx.rcode() == dns.rcode.NOERROR and mx.answer == [] and mx.authority[0].rdtype == dns.rdatatype.SOA
    for response in (a, aaaa, mx):
        assert ede(response) == (EDE_FILTERED, "category social blocked for group year7")
    assert "www.tiktok.test" not in [q.qname for q in upstream.queries]


def test_nxdomain_block(server):
    response = ask(server, "tiktok.test", source=YEAR8)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert ede(response) == (EDE_FILTERED, "category social blocked for group year8")


def test_blockpage_block(server):
    assert addresses(ask(server, "tiktok.test", source=BLOCKPAGE)) == [PAGE_V4]
    response = ask(server, "tiktok.test", "AAAA", source=BLOCKPAGE)
    assert addresses(response) == [PAGE_V6]
    assert ede(response) == (EDE_FILTERED, "category social blocked for group pages")


def test_refused_block(server):
    response = ask(server, "instagram.test", source=REFUSED)
    assert response.rcode() == dns.rcode.REFUSED and response.answer == []
    assert ede(response) == (EDE_FILTERED, "category social blocked for group refusing")


def test_without_edns_a_block_has_no_opt(server):
    response = ask(server, "www.tiktok.test", source=YEAR7, use_edns=False)
    assert addresses(response) == ["0.0.0.0"]
    assert response.edns == -1 and response.extended_errors() == []


def test_the_same_name_is_answered_normally_for_staff(server):
    response = ask(server, "www.tiktok.test")
    assert addresses(response) == [address_for("www.tiktok.test")]
    assert ede(response) is None


# --------------------------------------------------------------------------- lists


@pytest.mark.parametrize("name", ["tiktok.test", "a.b.c.tiktok.test", "WWW.TikTok.Test"])
def test_subdomains_of_listed_names_are_blocked(server, name):
    assert addresses(ask(server, name, source=YEAR7)) == ["0.0.0.0"]


def test_a_name_that_only_ends_like_a_listed_one_is_not_blocked(server):
    assert addresses(ask(server, "nottiktok.test", source=YEAR7)) == [address_for("nottiktok.test")]


def test_group_allow_list_wins_over_a_blocked_category(server):
    for name in ("learn.tiktok.test", "www.learn.tiktok.test"):
        assert addresses(ask(server, name, source=YEAR7)) == [address_for(name)]
    assert addresses(ask(server, "learn.tiktok.test", source=BLOCKPAGE)) == [PAGE_V4]  # only year7's list


def test_global_allow_list_wins_for_every_group(server):
    for source in (YEAR7, YEAR8, BLOCKPAGE):
        assert addresses(ask(server, "news.instagram.test", source=source)) == [address_for("news.instagram.test")]


def test_global_deny_list_blocks_every_group(server, upstream):
    staff = ask(server, "www.evil.test")
    assert addresses(staff) == ["0.0.0.0"]
    assert ede(staff) == (EDE_BLOCKED, "deny-list for group staff")
    assert ask(server, "evil.test", source=YEAR8).rcode() == dns.rcode.NXDOMAIN
    assert not any(q.qname.endswith("evil.test") for q in upstream.queries)


# --------------------------------------------------------------------------- bypass protection


@pytest.mark.parametrize(
    ("name", "rdtype", "rcode"),
    [
        ("use-application-dns.net", "A", dns.rcode.NXDOMAIN),
        ("mask.icloud.com", "A", dns.rcode.NXDOMAIN),
        ("mask-h2.icloud.com", "AAAA", dns.rcode.NXDOMAIN),
        ("_dns.resolver.arpa", "SVCB", dns.rcode.NOERROR),
    ],
)
def test_bypass_names(server, upstream, name, rdtype, rcode):
    response = ask(server, name, rdtype, source=YEAR7)
    assert response.rcode() == rcode and response.answer == []
    code, text = ede(response)
    assert code == EDE_BLOCKED and text == "bypass-protection for group year7"
    assert name not in [q.qname for q in upstream.queries]


def test_bypass_protection_off_lets_the_name_resolve(server):
    response = ask(server, "use-application-dns.net")  # staff: bypass_protection: false
    assert addresses(response) == [address_for("use-application-dns.net")]


# --------------------------------------------------------------------------- safe search


def test_google_is_rewritten_to_forcesafesearch_with_its_address(server):
    target = "forcesafesearch.google.com"
    for source in (YEAR7, YEAR8):
        response = ask(server, "www.google.com", source=source)
        assert response.rcode() == dns.rcode.NOERROR
        assert records(response) == [("www.google.com", "CNAME", f"{target}."), (target, "A", address_for(target))]
    assert records(ask(server, "www.google.com")) == [("www.google.com", "A", address_for("www.google.com"))]


@pytest.mark.parametrize(
    ("source", "target"),
    [(YEAR7, "restrict.youtube.com"), (YEAR8, "restrictmoderate.youtube.com"), (STAFF, None)],
)
def test_youtube_restricted_mode_per_group(server, source, target):
    response = ask(server, "www.youtube.com", source=source)
    if target is None:
        assert records(response) == [("www.youtube.com", "A", address_for("www.youtube.com"))]
    else:
        assert records(response) == [("www.youtube.com", "CNAME", f"{target}."), (target, "A", address_for(target))]


# --------------------------------------------------------------------------- CNAME inspection


def test_a_cname_into_a_blocked_domain_is_blocked(server):
    pupil = ask(server, "innocent.test", source=YEAR7)  # goes upstream
    assert addresses(pupil) == ["0.0.0.0"]
    assert ede(pupil) == (EDE_FILTERED, "category social blocked for group year7")
    staff = ask(server, "innocent.test")  # from the cache
    assert records(staff) == [
        ("innocent.test", "CNAME", "cdn.tiktok.test."),
        ("cdn.tiktok.test", "A", address_for("cdn.tiktok.test")),
    ]
    assert ask(server, "innocent.test", source=YEAR8).rcode() == dns.rcode.NXDOMAIN  # cached answer, checked again


# --------------------------------------------------------------------------- schedules


def test_a_rule_whose_window_is_open_now_blocks(server):
    response = ask(server, "www.roblox.test", source=YEAR7)
    assert addresses(response) == ["0.0.0.0"]
    code, text = ede(response)
    assert code == EDE_FILTERED
    assert text.startswith("category games blocked for group year7 during ")
    assert addresses(ask(server, "www.roblox.test", source=YEAR8)) == [address_for("www.roblox.test")]


def test_a_rule_whose_window_is_closed_now_does_not_block(server):
    assert addresses(ask(server, "discord.test", source=YEAR7)) == [address_for("discord.test")]


# --------------------------------------------------------------------------- reload


def test_sighup_reload_changes_a_groups_policy(tmp_path):
    with FakeUpstream() as upstream, FilterDnsProcess(policy_config(upstream.port), tmp_path) as server:
        assert addresses(ask(server, "roblox.test", source=YEAR8)) == [address_for("roblox.test")]
        server.write_config(policy_config(upstream.port, year8_block=("social", "games")))
        server.reload()
        blocked = ask(server, "roblox.test", source=YEAR8)
        assert blocked.rcode() == dns.rcode.NXDOMAIN
        assert ede(blocked) == (EDE_FILTERED, "category games blocked for group year8")
        server.write_config(policy_config(upstream.port, year8_block=()))
        server.reload()
        assert addresses(ask(server, "tiktok.test", source=YEAR8)) == [address_for("tiktok.test")]


def test_sighup_rereads_an_edited_local_list_file(tmp_path):
    """The config is unchanged, but an admin has added a name to a list file: SIGHUP must
    build the index again rather than keep the old one."""
    (tmp_path / "games.txt").write_text("roblox.test\n")
    with FakeUpstream() as upstream:
        config = policy_config(upstream.port, year8_block=("games",))
        config["categories"]["games"] = {"sources": [{"file": "games.txt", "format": "domains"}]}
        with FilterDnsProcess(config, tmp_path) as server:
            assert ask(server, "roblox.test", source=YEAR8).rcode() == dns.rcode.NXDOMAIN
            assert addresses(ask(server, "minecraft.test", source=YEAR8)) == [address_for("minecraft.test")]
            (tmp_path / "games.txt").write_text("roblox.test\nminecraft.test\n")
            server.reload()
            assert ask(server, "minecraft.test", source=YEAR8).rcode() == dns.rcode.NXDOMAIN
