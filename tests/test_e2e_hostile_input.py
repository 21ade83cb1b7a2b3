"""Malformed datagrams and TCP abuse never stop the server; after each, it still answers."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with FakeUpstream() as upstream:
        with FilterDnsProcess(base_config(upstream.port), tmp_path_factory.mktemp("hostile")) as process:
            yield process


def still_answers(server) -> None:
    query = dns.message.make_query("alive.example", "A")
    response = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=3)
    assert response.answer[0][0].to_text() == address_for("alive.example")


def send_raw(server, packet: bytes, wait: float = 0.3) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(packet, ("127.0.0.1", server.port))
        try:
            return sock.recvfrom(4096)[0]
        except socket.timeout:
            return None


HEADER = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0)

MALFORMED = {
    "empty": b"",
    "truncated header": b"\xbe\xef\x01",
    "header only": HEADER,
    "compression loop in question": HEADER + b"\xc0\x0c\x00\x01\x00\x01",
    "label overruns packet": HEADER + b"\x3fabc",
    "label length over 63": HEADER + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",
    "name longer than 255": HEADER + b"\x3f" + b"a" * 63 + (b"\x3f" + b"b" * 63) * 4 + b"\x00\x00\x01\x00\x01",
    "question without type": HEADER + b"\x07example\x00",
    "garbage": bytes(range(256)) * 3,
    "additional record runs past the end": struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 1)
    + b"\x07example\x00\x00\x01\x00\x01\x00\x00\x29\x10\x00\x00\x00\x00\x00\xff\xff",
    "two OPT records": struct.pack("!HHHHHH", 2, 0x0100, 1, 0, 0, 2)
    + b"\x07example\x00\x00\x01\x00\x01"
    + (b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00") * 2,
}


@pytest.mark.parametrize("packet", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_datagram_gets_formerr_or_nothing(server, packet):
    reply = send_raw(server, packet)
    if reply is not None:
        assert reply[:2] == packet[:2]
        assert reply[3] & 0xF == dns.rcode.FORMERR
    still_answers(server)


def test_response_packets_are_never_answered(server):
    response = dns.message.make_response(dns.message.make_query("reflect.example", "A"))
    assert send_raw(server, response.to_wire()) is None
    still_answers(server)


def test_unknown_opcode_gets_notimp_with_the_id(server):
    packet = struct.pack("!HHHHHH", 0x1234, 0x2 << 11, 1, 0, 0, 0) + b"\x07example\x00\x00\x01\x00\x01"
    reply = send_raw(server, packet)
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0xF == dns.rcode.NOTIMP


def test_half_open_and_garbage_tcp_connections_do_not_block_service(server):
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=3) for _ in range(20)]
    partial = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    partial.sendall(b"\x00\x40\x12")  # announces 64 bytes, sends 1
    garbage = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    garbage.sendall(b"\x00\x05hello" * 10)
    still_answers(server)
    query = dns.message.make_query("tcp-alive.example", "A")
    response = dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=3)
    assert response.rcode() == dns.rcode.NOERROR
    for sock in idle + [partial, garbage]:
        sock.close()


def test_oversized_tcp_length_then_close(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(b"\xff\xff" + b"x" * 1000)
    still_answers(server)


def test_random_datagrams_never_stop_the_server(server):
    import random

    rng = random.Random(7)
    query = dns.message.make_query("fuzz.example", "A", use_edns=0).to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(500):
            packet = bytearray(query)
            for _ in range(rng.randint(1, 6)):
                packet[rng.randrange(len(packet))] = rng.randrange(256)
            sock.sendto(bytes(packet[: rng.randint(0, len(packet))]), ("127.0.0.1", server.port))
    time.sleep(0.3)
    still_answers(server)
