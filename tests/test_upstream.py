"""UpstreamPool against fake upstreams on loopback: forwarding, spoof checks, TCP, failover,
health and the limits that protect the resolver."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from filterdns.config.model import Endpoint, UpstreamConfig, UpstreamServerConfig
from filterdns.resolver import upstream as upstream_module
from filterdns.resolver.upstream import (
    UpstreamOverloaded,
    UpstreamPool,
    UpstreamUnavailable,
)
from tests.support.fake_upstream import SPOOFED_A, Behaviour, FakeUpstream, address_for

REPO = Path(__file__).resolve().parents[1]


class Recorder:
    """An UpstreamObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, float]] = []
        self.errors: list[tuple[str, str]] = []

    def on_upstream_answer(self, label: str, seconds: float) -> None:
        self.answers.append((label, seconds))

    def on_upstream_error(self, label: str, kind: str) -> None:
        self.errors.append((label, kind))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake():
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def second():
    with FakeUpstream() as server:
        yield server


@asynccontextmanager
async def running_pool(
    *servers: UpstreamServerConfig, timeout: float = 1.0, config: dict | None = None, **kwargs
):
    """A started pool for ``servers``; ``config`` adds UpstreamConfig fields, ``kwargs`` go
    to UpstreamPool."""
    upstream_config = UpstreamConfig(servers=servers, timeout=timeout, **(config or {}))
    pool = UpstreamPool(upstream_config, **kwargs)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


def query(name: str, qtype: str = "A", *, rd: bool = True, cd: bool = False, edns=None) -> bytes:
    """A client query; ``edns=(payload, do)`` adds an OPT record."""
    record = DNSRecord.question(name, qtype)
    record.header.rd = int(rd)
    record.header.cd = int(cd)
    if edns is not None:
        payload, do = edns
        record.add_ar(EDNS0(udp_len=payload, flags="do" if do else ""))
    return record.pack()


def empty_reply(message: bytes) -> bytes:
    """The query itself with QR set: a valid reply with no records."""
    return message[:2] + bytes([message[2] | 0x80]) + message[3:]


def answers(reply: bytes) -> list[str]:
    return [str(rr.rdata) for rr in DNSRecord.parse(reply).rr]


@pytest.mark.parametrize(
    ("qtype", "expected"),
    [
        ("A", address_for("www.example.test")),
        ("AAAA", "::1"),
        ("MX", "10 mail0.www.example.test."),
        ("TXT", '"fake www.example.test 0"'),
    ],
)
async def test_forwards_and_restores_client_id(fake, qtype, expected):
    sent = query("www.example.test", qtype)
    async with running_pool(fake.server_config(name="primary")) as pool:
        reply, label = await pool.resolve(sent)
    assert label == "primary"
    assert reply[:2] == sent[:2]
    assert answers(reply) == [expected]
    assert DNSRecord.parse(reply).header.rcode == RCODE.NOERROR
    upstream_id = fake.queries[0].id
    assert upstream_id.to_bytes(2, "big") + sent[2:] == fake.queries[0].raw


async def test_negative_answers_pass_through(fake):
    fake.set_rule("gone.example.test", Behaviour("nxdomain", soa_minimum=60))
    async with running_pool(fake.server_config()) as pool:
        reply, _ = await pool.resolve(query("gone.example.test"))
    parsed = DNSRecord.parse(reply)
    assert parsed.header.rcode == RCODE.NXDOMAIN
    assert parsed.auth[0].rdata.times[-1] == 60


async def test_header_bits_and_edns_reach_upstream_unchanged(fake):
    async with running_pool(fake.server_config()) as pool:
        await pool.resolve(query("a.example.test", rd=True, cd=True, edns=(1400, True)))
        reply, _ = await pool.resolve(query("b.example.test", rd=False))
    seen = [(q.rd, q.cd, q.do, q.edns_payload) for q in fake.queries]
    assert seen == [(True, True, True, 1400), (False, False, False, None)]
    assert DNSRecord.parse(reply).header.rd == 0


async def test_mixed_case_question_is_echoed_byte_for_byte(fake):
    sent = query("WwW.ExAmPlE.TeSt", "AAAA")
    async with running_pool(fake.server_config()) as pool:
        reply, _ = await pool.resolve(sent)
    question = sent[12 : 12 + len(b"\x03WwW\x07ExAmPlE\x04TeSt\x00") + 4]
    assert reply[12 : 12 + len(question)] == question
    assert answers(reply) == ["::1"]


@pytest.mark.parametrize("bogus", ["wrong_id", "wrong_question", "same_length_question"])
async def test_spoofed_reply_is_ignored_and_the_real_one_accepted(fake, bogus):
    fake.set_rule("bank.example.test", Behaviour(bogus=bogus, delay=0.05))
    observer = Recorder()
    async with running_pool(fake.server_config(), observer=observer) as pool:
        reply, _ = await pool.resolve(query("bank.example.test"))
    assert answers(reply) == [address_for("bank.example.test")]
    assert SPOOFED_A not in answers(reply)
    assert (fake.server_config().label, "mismatch") in observer.errors


async def test_only_spoofed_replies_end_in_timeout(fake):
    fake.set_rule("bank.example.test", Behaviour("drop", bogus="wrong_question"))
    async with running_pool(fake.server_config(), timeout=0.3) as pool:
        with pytest.raises(UpstreamUnavailable):
            await pool.resolve(query("bank.example.test"))


async def test_malformed_replies_never_escape():
    """A hand-made upstream sends junk before a valid reply; the pool must shrug it off."""

    class Junky(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            for junk in (b"\x01", data[:2] + b"\xff" * 30, data[:2] + b"\x80" + data[3:7]):
                self.transport.sendto(junk, addr)
            self.transport.sendto(empty_reply(data), addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Junky, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    observer = Recorder()
    try:
        server = UpstreamServerConfig(Endpoint("127.0.0.1", port))
        async with running_pool(server, observer=observer) as pool:
            reply, _ = await pool.resolve(query("x.example.test"))
    finally:
        transport.close()
    assert DNSRecord.parse(reply).header.rcode == RCODE.NOERROR
    assert [kind for _, kind in observer.errors] == ["mismatch"] * 3


async def test_truncated_udp_reply_is_retried_over_tcp(fake):
    fake.set_rule("big.example.test", Behaviour(big=True))
    async with running_pool(fake.server_config()) as pool:
        reply, _ = await pool.resolve(query("big.example.test", edns=(1232, False)))
    parsed = DNSRecord.parse(reply)
    assert parsed.header.tc == 0
    assert len(parsed.rr) == 100
    assert [q.transport for q in fake.queries] == ["udp", "tcp"]


async def test_tcp_only_upstream_is_never_asked_over_udp():
    with FakeUpstream(tcp_only=True) as fake:
        async with running_pool(fake.server_config("tcp")) as pool:
            results = await asyncio.gather(*(pool.resolve(query(f"n{i}.test")) for i in range(5)))
        for i, (reply, _) in enumerate(results):
            assert answers(reply) == [address_for(f"n{i}.test")]
        assert {q.transport for q in fake.queries} == {"tcp"}
        # Pipelined on one connection, not one connection per query.
        assert len(set(fake.sources)) == 1


async def test_tcp_reconnects_when_the_server_closes_after_each_answer():
    connections = 0

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        size = int.from_bytes(await reader.readexactly(2), "big")
        message = await reader.readexactly(size)
        writer.write(size.to_bytes(2, "big") + empty_reply(message))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(one_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = UpstreamServerConfig(Endpoint("127.0.0.1", port), protocol="tcp")
        async with running_pool(config) as pool:
            for i in range(3):
                reply, _ = await pool.resolve(query(f"n{i}.test"))
                assert DNSRecord.parse(reply).q.qname == f"n{i}.test."
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 3


async def test_cancelled_queries_are_cleaned_up(fake):
    fake.default = Behaviour("drop")
    async with running_pool(fake.server_config(), timeout=0.2) as pool:
        tasks = [asyncio.create_task(pool.resolve(query(f"n{i}.test"))) for i in range(5)]
        await asyncio.sleep(0.02)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert pool.pending == 0
        await asyncio.sleep(0.25)  # past the deadlines
        assert all(not sock.waiting for sock in pool._servers[0].sockets)
        fake.default = Behaviour()
        reply, _ = await pool.resolve(query("after.test"))
    assert answers(reply) == [address_for("after.test")]


@pytest.mark.parametrize(
    ("failing", "kind"),
    [
        (Behaviour("drop"), "timeout"),
        (Behaviour("servfail"), "servfail"),
        (Behaviour("refused"), "refused"),
    ],
)
async def test_failover_to_next_server(fake, second, failing, kind):
    fake.default = failing
    observer = Recorder()
    servers = (fake.server_config(name="first"), second.server_config(name="second"))
    async with running_pool(*servers, timeout=0.6, observer=observer) as pool:
        reply, label = await pool.resolve(query("www.example.test"))
    assert label == "second"
    assert answers(reply) == [address_for("www.example.test")]
    assert observer.errors == [("first", kind)]
    assert [label for label, _ in observer.answers] == ["second"]


async def test_all_servfail_returns_the_last_servfail(fake, second):
    fake.default = Behaviour("refused")
    second.default = Behaviour("servfail")
    sent = query("www.example.test")
    async with running_pool(fake.server_config(), second.server_config(name="last")) as pool:
        reply, label = await pool.resolve(sent)
    assert label == "last"
    assert reply[:2] == sent[:2]
    assert DNSRecord.parse(reply).header.rcode == RCODE.SERVFAIL


async def test_all_down_raises_within_the_timeout(fake, second):
    fake.default = second.default = Behaviour("drop")
    async with running_pool(fake.server_config(), second.server_config(), timeout=1.0) as pool:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await pool.resolve(query("www.example.test"))
        elapsed = time.monotonic() - started
    # One shared budget: at the timeout, not twice it (the bound leaves a loaded machine room).
    assert 0.95 < elapsed < 1.9
    # The budget was shared: both servers were asked.
    assert len(fake.queries) == len(second.queries) == 1


async def test_closed_port_fails_fast_as_network_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    observer = Recorder()
    server = UpstreamServerConfig(Endpoint("127.0.0.1", port), name="nobody")
    async with running_pool(server, timeout=2.0, observer=observer) as pool:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await pool.resolve(query("www.example.test"))
    assert time.monotonic() - started < 1.0
    assert observer.errors == [("nobody", "network")]


async def test_health_marks_down_and_probes_after_retry_after(fake, second):
    clock = Clock()
    fake.default = Behaviour("servfail")
    servers = (fake.server_config(name="a"), second.server_config(name="b"))
    config = {"failure_threshold": 2, "retry_after": 30.0}
    async with running_pool(*servers, clock=clock, config=config) as pool:
        for _ in range(2):
            assert (await pool.resolve(query("x.test")))[1] == "b"
        a, b = pool.health()
        assert (a.healthy, a.consecutive_failures, a.queries, a.errors) == (False, 2, 2, 2)
        assert (b.healthy, b.consecutive_failures, b.queries) == (True, 0, 2)
        assert a.latency_ewma_ms is None and b.latency_ewma_ms is not None

        # Resting: not asked at all, even though it works again.
        fake.default = Behaviour()
        asked_before = len(fake.queries)
        assert (await pool.resolve(query("x.test")))[1] == "b"
        assert len(fake.queries) == asked_before

        # Rest over: the next query probes it first and it is healthy again.
        clock.now += 31
        assert (await pool.resolve(query("x.test")))[1] == "a"
        assert pool.health()[0].healthy
        assert (await pool.resolve(query("x.test")))[1] == "a"


async def test_failed_probe_rests_again(fake, second):
    clock = Clock()
    fake.default = Behaviour("refused")
    servers = (fake.server_config(name="a"), second.server_config(name="b"))
    config = {"failure_threshold": 1, "retry_after": 10.0}
    async with running_pool(*servers, clock=clock, config=config) as pool:
        await pool.resolve(query("x.test"))
        clock.now += 11
        await pool.resolve(query("x.test"))  # the probe, refused again
        await pool.resolve(query("x.test"))  # resting: only b
    assert len(fake.queries) == 2
    assert len(second.queries) == 3


async def test_prefers_the_faster_server(fake, second):
    fake.default = Behaviour(delay=0.4)  # far slower than a loaded machine's loopback answer
    servers = (fake.server_config(name="slow"), second.server_config(name="fast"))
    async with running_pool(*servers) as pool:
        labels = [(await pool.resolve(query(f"n{i}.test")))[1] for i in range(4)]
        slow, fast = pool.health()
    # The slow one is asked first (config order, unmeasured), then the measured-faster one.
    assert labels == ["slow", "fast", "fast", "fast"]
    assert slow.latency_ewma_ms > 350 > fast.latency_ewma_ms


async def test_equal_servers_keep_config_order(fake, second):
    servers = (second.server_config(name="b"), fake.server_config(name="a"))
    # A frozen clock measures every answer as instant: the servers are exactly as fast.
    async with running_pool(*servers, clock=Clock()) as pool:
        labels = {(await pool.resolve(query(f"n{i}.test")))[1] for i in range(10)}
    assert labels == {"b"}


async def test_random_ids_and_source_ports(fake):
    async with running_pool(fake.server_config()) as pool:
        for batch in range(4):
            await asyncio.gather(*(pool.resolve(query(f"n{batch}-{i}.test")) for i in range(50)))
    assert len(fake.queries) == 200
    ids = {q.id for q in fake.queries}
    ports = {port for _, port in fake.sources}
    assert len(ids) > 190  # 16-bit random IDs: a couple of collisions at most
    assert len(ports) == upstream_module.SOCKETS_PER_SERVER


async def test_sockets_rotate_to_new_source_ports(fake, monkeypatch):
    monkeypatch.setattr(upstream_module, "ROTATE_AFTER_QUERIES", 2)
    async with running_pool(fake.server_config()) as pool:
        for i in range(64):
            await pool.resolve(query(f"n{i}.test"))
    assert len({port for _, port in fake.sources}) > upstream_module.SOCKETS_PER_SERVER


async def test_pending_bound_rejects_at_once(fake):
    fake.default = Behaviour("drop")
    async with running_pool(fake.server_config(), timeout=2.0, max_pending=2) as pool:
        waiting = [asyncio.create_task(pool.resolve(query(f"n{i}.test"))) for i in range(2)]
        await asyncio.sleep(0.05)
        assert pool.pending == 2
        started = time.monotonic()
        with pytest.raises(UpstreamOverloaded):
            await pool.resolve(query("one-too-many.test"))
        # at once: long before the 2 s it would take to wait for a place
        assert time.monotonic() - started < 0.5
        results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert pool.pending == 0


async def test_malformed_query_is_rejected(fake):
    sent = query("www.example.test")
    async with running_pool(fake.server_config()) as pool:
        for bad in (sent[:12], sent[:4] + b"\x00\x02" + sent[6:], sent[:-3]):
            with pytest.raises(ValueError):
                await pool.resolve(bad)
    assert fake.queries == []


async def test_close_fails_waiting_queries(fake):
    fake.default = Behaviour("drop")
    pool = UpstreamPool(UpstreamConfig(servers=(fake.server_config(),), timeout=5.0))
    await pool.start()
    task = asyncio.create_task(pool.resolve(query("x.test")))
    await asyncio.sleep(0.05)
    await pool.close()
    with pytest.raises(UpstreamUnavailable):
        await task
    with pytest.raises(UpstreamUnavailable):
        await pool.resolve(query("x.test"))


def test_works_on_uvloop(fake):
    fake.set_rule("big.test", Behaviour(big=True))

    async def main() -> list[int]:
        async with running_pool(fake.server_config()) as pool:
            replies = await asyncio.gather(*(pool.resolve(query(f"n{i}.test")) for i in range(20)))
            big, _ = await pool.resolve(query("big.test"))
        return [len(DNSRecord.parse(r).rr) for r, _ in replies] + [len(DNSRecord.parse(big).rr)]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == [1] * 20 + [100]


async def test_fake_upstream_runs_as_a_subprocess():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_upstream", "--port", "0", "--lifetime", "20",
         "--rule", "gone.test=nxdomain,soa_minimum=42"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(await asyncio.to_thread(process.stdout.readline))
        server = UpstreamServerConfig(Endpoint("127.0.0.1", port))
        async with running_pool(server, timeout=2.0) as pool:
            reply, _ = await pool.resolve(query("gone.test", "AAAA"))
            tcp_server = UpstreamServerConfig(Endpoint("127.0.0.1", port), protocol="tcp")
        async with running_pool(tcp_server, timeout=2.0) as pool:
            tcp_reply, _ = await pool.resolve(query("here.test", "AAAA"))
    finally:
        process.terminate()
        process.wait(timeout=5)
        process.stdout.close()
    parsed = DNSRecord.parse(reply)
    assert parsed.header.rcode == RCODE.NXDOMAIN
    assert parsed.auth[0].rtype == QTYPE.SOA and parsed.auth[0].rdata.times[-1] == 42
    assert answers(tcp_reply) == ["::1"]
