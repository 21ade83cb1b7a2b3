"""Real forwarders in front of filterdns: two classes behind one router get different answers."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.forwarders import ask_from, dnsmasq, unbound
from tests.support.server import FilterDnsProcess, base_config

CLASS_A = "127.0.0.2"  # blocks social
CLASS_B = "127.0.0.3"  # allows social


def two_classes(upstream_port: int) -> dict:
    return base_config(
        upstream_port,
        trusted_forwarders=["127.0.0.1/32"],
        categories={"social": {"description": "Social media", "domains": ["social.example"]}},
        groups={
            "class_a": {"networks": [f"{CLASS_A}/32"], "block": ["social"]},
            "class_b": {"networks": [f"{CLASS_B}/32"]},
            "router": {"networks": ["127.0.0.1/32"], "block": ["social"]},
        },
        default_group="guests",
    )


@pytest.fixture
def server(tmp_path):
    with FakeUpstream() as upstream:
        with FilterDnsProcess(two_classes(upstream.port), tmp_path) as process:
            yield process


def a_records(response) -> list[str]:
    return [rr.to_text() for rrset in response.answer for rr in rrset if rrset.rdtype == 1]


def test_dnsmasq_forwards_plain_queries(server):
    with dnsmasq(server.port) as forwarder:
        response = ask_from("127.0.0.1", forwarder.port, "www.school.example")
        assert a_records(response) == [address_for("www.school.example")]


def test_dnsmasq_add_subnet_separates_two_classes(server):
    with dnsmasq(server.port) as forwarder:
        for _ in range(2):
            assert a_records(ask_from(CLASS_A, forwarder.port, "www.social.example")) == ["0.0.0.0"]
            assert a_records(ask_from(CLASS_B, forwarder.port, "www.social.example")) == [address_for("www.social.example")]


def test_unbound_subnetcache_never_leaks_one_class_answer_to_another(server, tmp_path):
    with unbound(server.port, tmp_path) as forwarder:
        # B first, so a leak would hand B's cached (allowed) answer to A, then the reverse.
        assert a_records(ask_from(CLASS_B, forwarder.port, "feed.social.example")) == [address_for("feed.social.example")]
        assert a_records(ask_from(CLASS_A, forwarder.port, "feed.social.example")) == ["0.0.0.0"]
        assert a_records(ask_from(CLASS_B, forwarder.port, "feed.social.example")) == [address_for("feed.social.example")]
        assert a_records(ask_from(CLASS_A, forwarder.port, "feed.social.example")) == ["0.0.0.0"]


def test_reply_echoes_client_subnet_with_full_scope(server):
    option = dns.edns.ECSOption(CLASS_A, 32)
    response = ask_from("127.0.0.1", server.port, "x.social.example", use_edns=0, options=[option])
    echoed = [o for o in response.options if isinstance(o, dns.edns.ECSOption)]
    assert echoed and echoed[0].scopelen == 32 and echoed[0].address == CLASS_A


def test_client_subnet_from_an_untrusted_address_is_ignored(server):
    # 127.0.0.3 (class B, social allowed) claims to speak for class A: not believed.
    option = dns.edns.ECSOption(CLASS_A, 32)
    response = ask_from(CLASS_B, server.port, "y.social.example", use_edns=0, options=[option])
    assert a_records(response) == [address_for("y.social.example")]
    assert not [o for o in response.options if isinstance(o, dns.edns.ECSOption)]


def test_mac_option_from_trusted_forwarder_picks_the_group(tmp_path):
    with FakeUpstream() as upstream:
        config = two_classes(upstream.port)
        config["groups"]["class_b"]["macs"] = ["02:00:00:00:00:0b"]
        with FilterDnsProcess(config, tmp_path) as process:
            raw_mac = dns.edns.GenericOption(65001, bytes.fromhex("02000000000b"))
            # From the router (127.0.0.1, group "router" blocks social) but with class B's MAC.
            response = ask_from("127.0.0.1", process.port, "z.social.example", use_edns=0, options=[raw_mac])
            assert a_records(response) == [address_for("z.social.example")]
            text_mac = dns.edns.GenericOption(65073, b"02:00:00:00:00:0b")
            response = ask_from("127.0.0.1", process.port, "w.social.example", use_edns=0, options=[text_mac])
            assert a_records(response) == [address_for("w.social.example")]
            # The same option from an untrusted source is ignored: the default group allows
            # social, so use class A's address, which blocks it.
            response = ask_from(CLASS_A, process.port, "v.social.example", use_edns=0, options=[raw_mac])
            assert a_records(response) == ["0.0.0.0"]


# EDNS option codes: Client Subnet (RFC 7871) and dnsmasq's two MAC forms.
CLIENT_IDENTITY_OPTIONS = {8, 65001, 65073}


def test_client_subnet_and_mac_options_never_reach_the_upstream(tmp_path):
    with FakeUpstream() as upstream:
        config = two_classes(upstream.port)
        config["groups"]["class_b"]["macs"] = ["02:00:00:00:00:0b"]
        with FilterDnsProcess(config, tmp_path) as process:
            options = [
                [dns.edns.ECSOption(CLASS_B, 32)],
                [dns.edns.GenericOption(65001, bytes.fromhex("02000000000b"))],
                [dns.edns.GenericOption(65073, b"02:00:00:00:00:0b")],
                [dns.edns.ECSOption(CLASS_B, 24), dns.edns.GenericOption(65001, bytes.fromhex("02000000000c"))],
            ]
            for number, given in enumerate(options):
                response = ask_from("127.0.0.1", process.port, f"n{number}.school.example", use_edns=0, options=given)
                assert a_records(response) == [address_for(f"n{number}.school.example")]
        received = [q for q in upstream.queries if q.qname.endswith("school.example")]
    assert len(received) == len(options)
    for query in received:
        assert not CLIENT_IDENTITY_OPTIONS & set(query.option_codes), (query.qname, query.option_codes)


@pytest.mark.parametrize(("address", "length"), [(CLASS_B, 24), (CLASS_B, 31), ("::ffff:127.0.0.3", 96)])
def test_only_a_full_length_client_subnet_names_the_client(server, address, length):
    """A /24 from the router says "somewhere in this network", not "this device": the query
    stays the router's (which blocks social), while /32 names class B (which allows it)."""
    partial = dns.edns.ECSOption(address, length)
    response = ask_from("127.0.0.1", server.port, f"p{length}.social.example", use_edns=0, options=[partial])
    assert a_records(response) == ["0.0.0.0"]
    full = dns.edns.ECSOption(CLASS_B, 32)
    response = ask_from("127.0.0.1", server.port, f"f{length}.social.example", use_edns=0, options=[full])
    assert a_records(response) == [address_for(f"f{length}.social.example")]
