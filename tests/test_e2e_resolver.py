"""End to end: a real filterdns process, a fake upstream, dnspython as the client."""

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


@pytest.fixture
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def server(upstream, tmp_path):
    with FilterDnsProcess(base_config(upstream.port), tmp_path) as process:
        yield process


def ask(server, name, rdtype="A", *, tcp=False, use_edns=0, payload=1232, **kwargs) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=use_edns, payload=payload, **kwargs)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=server.port, timeout=3, ignore_trailing=False)


def answers(response, rdtype=dns.rdatatype.A) -> list[str]:
    return sorted(rr.to_text() for rrset in response.answer if rrset.rdtype == rdtype for rr in rrset)


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "MX", "TXT"])
def test_record_types_over_udp_and_tcp(server, rdtype):
    for tcp in (False, True):
        response = ask(server, f"www.{rdtype.lower()}-{int(tcp)}.example", rdtype, tcp=tcp)
        assert response.rcode() == dns.rcode.NOERROR
        assert any(rrset.rdtype == dns.rdatatype.from_text(rdtype) for rrset in response.answer)
    if rdtype == "A":
        assert answers(response) == [address_for("www.a-1.example")]


def test_mixed_case_question_is_echoed_byte_for_byte(server):
    query = dns.message.make_query("WwW.ExAmPlE.ORG", "A")
    wire = query.to_wire()
    for _ in range(2):  # the second answer comes from the cache
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(wire, ("127.0.0.1", server.port))
            reply, _ = sock.recvfrom(4096)
        question_end = 12 + len(b"\x03WwW\x07ExAmPlE\x03ORG\x00") + 4
        assert reply[:2] == wire[:2]
        assert reply[12:question_end] == wire[12:question_end]


def test_cache_serves_second_query_and_counts_ttl_down(server, upstream):
    upstream.set_rule("ttl.example", Behaviour(ttl=100))
    first = ask(server, "ttl.example")
    time.sleep(2.1)
    second = ask(server, "ttl.example")
    assert [q.qname for q in upstream.queries].count("ttl.example") == 1
    assert first.answer[0].ttl == 100
    assert 96 <= second.answer[0].ttl <= 98


def test_nxdomain_and_nodata_are_cached_per_soa_minimum(server, upstream):
    upstream.set_rule("gone.example", Behaviour("nxdomain", soa_minimum=60))
    upstream.set_rule("empty.example", Behaviour("nodata", soa_minimum=60))
    for _ in range(3):
        assert ask(server, "gone.example").rcode() == dns.rcode.NXDOMAIN
        nodata = ask(server, "empty.example")
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    names = [q.qname for q in upstream.queries]
    assert names.count("gone.example") == 1
    assert names.count("empty.example") == 1


def test_truncated_udp_answer_is_fetched_over_tcp_and_fitted_to_the_client(server, upstream):
    upstream.set_rule("big.example", Behaviour(big=True))
    small = ask(server, "big.example", use_edns=False)  # 512-byte client: gets TC
    assert small.flags & dns.flags.TC
    full = ask(server, "big.example", tcp=True)
    assert len(answers(full)) == 100
    assert any(q.transport == "tcp" and q.qname == "big.example" for q in upstream.queries)


def test_tcp_pipelining_answers_every_query_on_one_connection(server):
    names = [f"p{i}.pipeline.example" for i in range(20)]
    queries = [dns.message.make_query(name, "A") for name in names]
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
        got = {}
        buffer = b""
        while len(got) < len(queries):
            buffer += sock.recv(65535)
            while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack("!H", buffer[:2])[0]:
                length = struct.unpack("!H", buffer[:2])[0]
                message = dns.message.from_wire(buffer[2 : 2 + length])
                buffer = buffer[2 + length :]
                got[message.id] = message
    for query, name in zip(queries, names):
        assert answers(got[query.id]) == [address_for(name)]


def test_edns_bits_reach_the_upstream(server, upstream):
    ask(server, "bits.example", use_edns=0, payload=4000, want_dnssec=True)
    received = [q for q in upstream.queries if q.qname == "bits.example"][0]
    assert received.do and received.rd
    assert received.edns_payload == 4000


def test_spoofed_replies_with_wrong_id_or_question_are_rejected(server, upstream):
    upstream.set_rule("id.example", Behaviour(bogus="wrong_id", delay=0.1))
    upstream.set_rule("question.example", Behaviour(bogus="wrong_question", delay=0.1))
    assert answers(ask(server, "id.example")) == [address_for("id.example")]
    assert answers(ask(server, "question.example")) == [address_for("question.example")]


def test_failover_to_the_second_upstream(tmp_path):
    with FakeUpstream(default=Behaviour("servfail")) as broken, FakeUpstream() as healthy:
        config = base_config(broken.port)
        config["upstream"]["servers"] = [f"127.0.0.1:{broken.port}", f"127.0.0.1:{healthy.port}"]
        with FilterDnsProcess(config, tmp_path) as process:
            assert answers(ask(process, "fail.example")) == [address_for("fail.example")]
            assert broken.queries and healthy.queries


def test_all_upstreams_down_gives_servfail_in_time(tmp_path):
    with FakeUpstream(default=Behaviour("drop")) as silent:
        with FilterDnsProcess(base_config(silent.port), tmp_path) as process:
            started = time.monotonic()
            response = ask(process, "down.example")
            assert response.rcode() == dns.rcode.SERVFAIL
            assert time.monotonic() - started < 2.5


def test_metrics_endpoint_counts_queries_without_names_or_addresses(upstream, tmp_path):
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    config = base_config(upstream.port, metrics={"listen": f"127.0.0.1:{metrics_port}"})
    config["upstream"]["servers"] = [{"address": f"127.0.0.1:{upstream.port}", "name": "fake"}]
    with FilterDnsProcess(config, tmp_path) as process:
        ask(process, "counted.example")
        time.sleep(0.2)
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=3).read().decode()
    assert 'filterdns_queries_total{' in text
    assert "counted.example" not in text and "127.0.0.1" not in text


def test_query_log_gets_one_json_line_per_query(upstream, tmp_path):
    import json

    config = base_config(upstream.port, log={"level": "info", "query_log": "queries.jsonl"})
    with FilterDnsProcess(config, tmp_path) as process:
        ask(process, "logged.example")
        ask(process, "logged.example", tcp=True)
    lines = [json.loads(line) for line in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert [(e["name"], e["transport"]) for e in lines] == [("logged.example", "udp"), ("logged.example", "tcp")]
    assert lines[1]["answered_by"] == "cache"


def test_sighup_reload_keeps_answering(server, upstream):
    config = dict(server.config, deny=["denied.example"])
    server.write_config(config)
    server.reload()
    response = ask(server, "denied.example")
    assert answers(response) == ["0.0.0.0"]
    assert answers(ask(server, "still-fine.example")) == [address_for("still-fine.example")]
