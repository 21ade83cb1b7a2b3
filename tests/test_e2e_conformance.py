"""Protocol conformance and abuse limits against a live server (RFC 1035, 6891, 7766, 8482, 8767)."""

from __future__ import annotations

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.fake_upstream import Behaviour, FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    config = base_config(
        upstream.port,
        server={
            "listen": ["127.0.0.1:0"],
            # 127.0.0.9 is deliberately outside: it stands for an internet client.
            "allow_networks": ["127.0.0.1/32", "127.0.0.2/31", "127.0.0.4/30"],
            "rate_limit": {"queries_per_second": 5, "burst": 5, "slip": 2},
            "tcp_max_per_client": 3,
        },
        trusted_forwarders=["127.0.0.1/32"],
        cache={"serve_stale_max_age": "1h", "stale_ttl": 30},
    )
    with FilterDnsProcess(config, tmp_path_factory.mktemp("conformance")) as process:
        yield process


def udp(server, query: dns.message.Message, source: str = "127.0.0.1", timeout: float = 3) -> dns.message.Message:
    return dns.query.udp(query, "127.0.0.1", port=server.port, timeout=timeout, source=source)


def test_clients_outside_allow_networks_are_refused(server):
    response = udp(server, dns.message.make_query("open.example", "A"), source="127.0.0.9")
    assert response.rcode() == dns.rcode.REFUSED and not response.answer
    assert udp(server, dns.message.make_query("open.example", "A"), source="127.0.0.2").rcode() == dns.rcode.NOERROR


def test_any_gets_the_rfc8482_minimal_answer(server):
    response = udp(server, dns.message.make_query("any.example", "ANY"))
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.HINFO]
    assert response.answer[0][0].cpu == b"RFC8482"


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_refused(server, rdtype):
    query = dns.message.make_query("example", rdtype)
    response = dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=3)
    assert response.rcode() == dns.rcode.REFUSED


def test_chaos_class_is_refused(server):
    response = udp(server, dns.message.make_query("version.bind", "TXT", rdclass="CH"))
    assert response.rcode() == dns.rcode.REFUSED


def test_edns_version_above_zero_gets_badvers_with_version_zero(server):
    response = udp(server, dns.message.make_query("v1.example", "A", use_edns=1))
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0


def test_unknown_edns_options_are_not_echoed_and_z_bit_is_cleared(server):
    query = dns.message.make_query("opts.example", "A", use_edns=0, options=[dns.edns.GenericOption(65000, b"xyz")])
    query.flags |= 0x0040  # the Z bit
    response = udp(server, query)
    assert not response.options
    assert not response.flags & 0x0040


def test_forwarded_answers_never_claim_authority(server):
    response = udp(server, dns.message.make_query("aa.example", "A"))
    assert not response.flags & dns.flags.AA


def test_unknown_types_pass_through(server, upstream):
    response = udp(server, dns.message.make_query("unknown.example", "TYPE65280"))
    assert response.rcode() == dns.rcode.NOERROR
    assert any(q.qname == "unknown.example" and q.qtype in ("TYPE65280", "65280") for q in upstream.queries)


def test_rate_limit_slips_truncated_answers_and_drops_the_rest(server):
    wire = dns.message.make_query("flood.example", "A").to_wire()
    answered = truncated = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.4", 0))
        sock.settimeout(0.5)
        for _ in range(40):
            sock.sendto(wire, ("127.0.0.1", server.port))
        try:
            while True:
                reply = dns.message.from_wire(sock.recvfrom(4096)[0])
                if reply.flags & dns.flags.TC:
                    truncated += 1
                else:
                    answered += 1
        except socket.timeout:
            pass
    assert 5 <= answered <= 8  # the burst, plus what refills during the run
    assert truncated >= 10  # every second limited reply slips
    assert answered + truncated < 40  # the rest are dropped
    # TCP is never limited: the handshake proves the address.
    response = dns.query.tcp(dns.message.make_query("flood.example", "A"), "127.0.0.1", port=server.port, timeout=3, source="127.0.0.4")
    assert response.answer


def test_tcp_connections_per_client_are_capped(server):
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=3, source_address=("127.0.0.5", 0)) for _ in range(3)]
    extra = socket.create_connection(("127.0.0.1", server.port), timeout=3, source_address=("127.0.0.5", 0))
    extra.settimeout(3)
    try:
        wire = dns.message.make_query("cap.example", "A").to_wire()
        extra.sendall(struct.pack("!H", len(wire)) + wire)
        assert extra.recv(100) == b""  # closed by the server
    except ConnectionResetError:
        pass
    finally:
        extra.close()
        for sock in held:
            sock.close()
    time.sleep(0.2)
    response = dns.query.tcp(dns.message.make_query("cap.example", "A"), "127.0.0.1", port=server.port, timeout=3, source="127.0.0.5")
    assert response.answer


def test_serve_stale_while_upstreams_are_down(server, upstream):
    upstream.set_rule("stale.example", Behaviour(ttl=1))
    assert udp(server, dns.message.make_query("stale.example", "A")).answer
    time.sleep(1.5)
    upstream.set_rule("stale.example", Behaviour("drop"))
    started = time.monotonic()
    response = udp(server, dns.message.make_query("stale.example", "A"))
    assert time.monotonic() - started < 2.5
    assert [rr.to_text() for rr in response.answer[0]] == [address_for("stale.example")]
    assert response.answer[0].ttl == 30
    upstream.set_rule("stale.example", Behaviour(ttl=60))
    assert udp(server, dns.message.make_query("stale.example", "A")).answer[0].ttl in (59, 60)
