"""DNS over TCP keeps its limits (RFC 7766 section 6.2): an idle connection is closed after the
idle timeout, a connection that piles up queries without reading answers is cut off, and the
total and per-client connection caps hold, while other clients keep being answered. A real
``filterdns serve`` with small limits; the fake upstream holds answers for one name so that
queries stay in flight."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
import dns.query
import dns.exception
import dns.rcode
import pytest

from filterdns.server.tcp import MAX_IN_FLIGHT_PER_CONNECTION
from tests.support.fake_upstream import Behaviour, FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config

IDLE_TIMEOUT = 0.5
MAX_CONNECTIONS = 6
MAX_PER_CLIENT = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with FakeUpstream() as upstream:
        upstream.set_rule("slow.example", Behaviour(delay=3.0))
        config = base_config(
            upstream.port,
            server={
                "listen": ["127.0.0.1:0"],
                "tcp_idle_timeout": f"{int(IDLE_TIMEOUT * 1000)}ms",
                "tcp_max_connections": MAX_CONNECTIONS,
                "tcp_max_per_client": MAX_PER_CLIENT,
            },
            upstream={"servers": [f"127.0.0.1:{upstream.port}"], "timeout": "5s"},
        )
        with FilterDnsProcess(config, tmp_path_factory.mktemp("tcp")) as process:
            yield process


def framed(name: str, qid: int) -> bytes:
    query = dns.message.make_query(name, "A", id=qid).to_wire()
    return struct.pack("!H", len(query)) + query


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes ``sock`` (EOF or reset), None if it stays open."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while True:
            if not sock.recv(65536):
                return time.monotonic() - start
    except ConnectionResetError:
        return time.monotonic() - start
    except socket.timeout:
        return None


def answered_over_tcp(server, source: str = "127.0.0.1") -> bool:
    query = dns.message.make_query("alive.example", "A")
    response = dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=3, source=source)
    return response.answer[0][0].to_text() == address_for("alive.example")


def test_an_idle_connection_is_closed_after_the_idle_timeout(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        waited = closed_within(sock, IDLE_TIMEOUT + 3)
    assert waited is not None, "an idle connection stayed open"
    assert IDLE_TIMEOUT * 0.8 <= waited <= IDLE_TIMEOUT + 2.5


def test_a_connection_with_an_answer_pending_is_not_idle(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(framed("slow.example", 7))  # answered after 3 s, well past the idle timeout
        sock.settimeout(6)
        length = struct.unpack("!H", sock.recv(2))[0]
        reply = dns.message.from_wire(sock.recv(length))
    assert reply.id == 7 and reply.answer[0][0].to_text() == address_for("slow.example")


def test_too_many_queries_in_flight_on_one_connection_cut_it_off(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(b"".join(framed("slow.example", qid) for qid in range(MAX_IN_FLIGHT_PER_CONNECTION + 1)))
        waited = closed_within(sock, 2.5)  # well before the slow answers (3 s)
    assert waited is not None, "the connection survived more queries in flight than the cap"
    assert answered_over_tcp(server)


def test_the_per_client_and_total_connection_caps_hold(server):
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_PER_CLIENT):
            sock = socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.21", 0), timeout=3)
            sock.sendall(framed("slow.example", 1))  # keeps it busy, so not idle
            held.append(sock)
        extra = socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.21", 0), timeout=3)
        assert closed_within(extra, 1.0) is not None, "a client got more connections than its cap"
        extra.close()
        # another client still gets in, up to the total cap
        for _ in range(MAX_CONNECTIONS - MAX_PER_CLIENT):
            sock = socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.22", 0), timeout=3)
            sock.sendall(framed("slow.example", 2))
            held.append(sock)
        third = socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.23", 0), timeout=3)
        assert closed_within(third, 1.0) is not None, "the server took more connections than its total cap"
        third.close()
        # UDP is unaffected while TCP is full
        response = dns.query.udp(dns.message.make_query("alive.example", "A"), "127.0.0.1", port=server.port, timeout=3)
        assert response.rcode() == dns.rcode.NOERROR
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # the server notices the closed connections and admits again
        try:
            if answered_over_tcp(server, "127.0.0.23"):
                break
        except (ConnectionError, EOFError, dns.exception.Timeout):
            pass
        assert time.monotonic() < deadline, "connections were not released"
        time.sleep(0.1)
