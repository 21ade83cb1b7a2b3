"""Fuzzing the query path: nothing a client sends may raise out of it or stop the server.

Two harnesses: a hypothesis property over the in-process pipeline (every packet gets an
answer, FORMERR/NOTIMP/REFUSED with the right ID, or silence; never an exception), and a
structure-aware run of 10,000 packets against a live server, checking after every batch that
it still answers real queries.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import dns.message
import dns.query
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterdns.config.loader import load_config
from filterdns.server.service import Service
from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config

POLICY_YAML = """
server: {{listen: ["127.0.0.1:0"]}}
upstream: {{servers: ["127.0.0.1:{port}"], timeout: 500ms}}
trusted_forwarders: [127.0.0.1/32]
categories:
  social: {{domains: [social.example]}}
groups:
  pupils: {{networks: [127.0.0.0/8], block: [social], safe_search: {{search: true, youtube: strict}}}}
"""


def seed_queries() -> list[bytes]:
    """Real queries covering every branch: blocks, rewrites, EDNS with ECS and MAC, TCP sizes."""
    import dns.edns

    ecs = dns.edns.ECSOption("127.0.0.7", 32)
    mac = dns.edns.GenericOption(65001, b"\x02\x00\x00\x00\x00\x01")
    queries = [
        dns.message.make_query("www.social.example", "A"),
        dns.message.make_query("www.google.com", "AAAA", use_edns=0),
        dns.message.make_query("fine.example", "MX", use_edns=0, options=[ecs, mac], want_dnssec=True),
        dns.message.make_query("use-application-dns.net", "A"),
        dns.message.make_query("any.example", "ANY"),
    ]
    return [q.to_wire() for q in queries]


def mutate(rng: random.Random, packet: bytes) -> bytes:
    """One structure-aware mutation: header fields, counts, lengths and pointers are where
    parsers break, so they are hit more often than uniformly random bytes would."""
    data = bytearray(packet)
    if len(data) < 12:
        return bytes(data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))))
    choice = rng.randrange(8)
    if choice == 0 and data:
        data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 1:
        data[4:12] = struct.pack("!HHHH", *(rng.choice([0, 1, 2, 255, 65535]) for _ in range(4)))
    elif choice == 2 and len(data) > 12:
        data[rng.randrange(12, len(data))] = rng.choice([0xC0, 0x3F, 0x40, 0xFF, 0x00])
    elif choice == 3:
        del data[rng.randrange(len(data) + 1) :]
    elif choice == 4:
        position = rng.randrange(len(data) + 1)
        data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    elif choice == 5:
        data[2:4] = struct.pack("!H", rng.randrange(65536))
    elif choice == 6 and len(data) > 14:
        # A compression pointer aimed anywhere, including at itself.
        position = rng.randrange(12, len(data) - 1)
        data[position : position + 2] = struct.pack("!H", 0xC000 | rng.randrange(len(data)))
    else:
        data += b"\x00\x00\x29" + struct.pack("!HBBHH", rng.randrange(65536), 0, rng.randrange(3), 0, 8) + bytes(
            rng.randrange(256) for _ in range(8)
        )
        data[10:12] = struct.pack("!H", ((data[10] << 8 | data[11]) + 1) & 0xFFFF)
    return bytes(data)


@pytest.fixture(scope="module")
def pipeline_runner(tmp_path_factory):
    """A started in-process service and a function that answers one packet through it."""
    loop = asyncio.new_event_loop()
    with FakeUpstream() as upstream:
        config_path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
        config_path.write_text(POLICY_YAML.format(port=upstream.port))
        service = Service(load_config(config_path))
        loop.run_until_complete(service.start())

        def answer(packet: bytes, transport: str = "udp"):
            result = service.pipeline.answer(packet, "127.0.0.1", transport)
            if result is None or isinstance(result, bytes):
                return result
            return loop.run_until_complete(asyncio.wait_for(result, 5))

        yield answer
        loop.run_until_complete(service.stop())
    loop.close()


def check_reply(packet: bytes, reply: bytes | None) -> None:
    if reply is None:
        return
    assert len(reply) >= 12
    assert reply[:2] == packet[:2], "a reply must carry the query's ID"
    assert reply[2] & 0x80, "a reply must have QR set"


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(pipeline_runner, packet):
    check_reply(packet, pipeline_runner(packet))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(seed_queries()), st.randoms(use_true_random=False), st.integers(1, 6), st.sampled_from(["udp", "tcp"]))
def test_mutated_queries_never_raise(pipeline_runner, seed, rng, rounds, transport):
    packet = seed
    for _ in range(rounds):
        packet = mutate(rng, packet)
    check_reply(packet, pipeline_runner(packet, transport))


def test_ten_thousand_fuzzed_packets_against_a_live_server(tmp_path):
    rng = random.Random(20261123)
    seeds = seed_queries()
    with FakeUpstream() as upstream:
        config = base_config(upstream.port, trusted_forwarders=["127.0.0.1/32"])
        with FilterDnsProcess(config, tmp_path) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                for batch in range(20):
                    for _ in range(500):
                        packet = rng.choice(seeds)
                        for _ in range(rng.randint(1, 4)):
                            packet = mutate(rng, packet)
                        try:
                            sock.sendto(packet, ("127.0.0.1", server.port))
                        except BlockingIOError:
                            pass
                        try:
                            while True:
                                sock.recv(65535)  # keep our own buffer empty
                        except BlockingIOError:
                            pass
                    probe = dns.message.make_query(f"alive{batch}.example", "A")
                    response = dns.query.udp(probe, "127.0.0.1", port=server.port, timeout=3)
                    assert response.answer[0][0].to_text() == address_for(f"alive{batch}.example")
            for _ in range(50):  # and over TCP, one connection per mutated message
                packet = mutate(rng, rng.choice(seeds))
                with socket.create_connection(("127.0.0.1", server.port), timeout=3) as conn:
                    conn.sendall(struct.pack("!H", len(packet)) + packet)
            response = dns.query.tcp(dns.message.make_query("tcp-alive.example", "A"), "127.0.0.1", port=server.port, timeout=3)
            assert response.answer
