"""A fake upstream DNS server for tests: UDP and TCP on one loopback port, scripted per name.

Why a fake and not unbound/dnsmasq: tests must be able to make an upstream misbehave on
purpose (wrong IDs, truncation, silence, SERVFAIL) and to see exactly what reached it
(header bits, EDNS, source ports). Every address it hands out is loopback (127.x or ::1),
so nothing a test resolves can ever lead traffic off the machine.

In-process (a background thread with its own event loop)::

    with FakeUpstream() as fake:
        fake.set_rule("gone.test", Behaviour("nxdomain", soa_minimum=60))
        ... query 127.0.0.1:fake.port ...
        assert fake.queries[0].qname == "gone.test"

As a subprocess (prints the bound port as its first stdout line, exits after --lifetime)::

    python -m tests.support.fake_upstream --port 0 --rule gone.test=nxdomain,soa_minimum=60
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import zlib
from dataclasses import dataclass
from typing import Literal, NamedTuple

from dnslib import (
    AAAA,
    CNAME,
    EDNS0,
    MX,
    QTYPE,
    RCODE,
    RR,
    SOA,
    TXT,
    A,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)

from filterdns.config.model import Endpoint, UpstreamServerConfig

Kind = Literal["answer", "nxdomain", "nodata", "servfail", "refused", "drop"]

EDNS_PAYLOAD = 1232  # what the fake advertises in its own OPT record
SPOOFED_A = "127.66.66.66"  # the address in deliberately bogus replies
BIG_ANSWER_RECORDS = 100  # enough A records to exceed 1232 bytes
MAX_CNAME_CHAIN = 8


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the fake answers one name.

    ``kind`` picks the real reply (``drop``: none at all). ``bogus`` first sends a reply a
    resolver must reject (``wrong_id``, ``wrong_question`` (a longer name) or
    ``same_length_question`` (one letter changed), answering ``SPOOFED_A``); the
    real reply follows after ``delay`` seconds unless ``kind`` is ``drop``. ``cname_to``
    answers with a CNAME and then follows the target's own rule. ``big`` answers A/TXT/MX
    with ``BIG_ANSWER_RECORDS`` records, which is truncated (TC=1) over UDP.
    """

    kind: Kind = "answer"
    ttl: int = 300
    soa_minimum: int = 300
    cname_to: str | None = None
    big: bool = False
    delay: float = 0.0
    bogus: Literal["wrong_id", "wrong_question", "same_length_question"] | None = None

    @classmethod
    def parse(cls, spec: str) -> Behaviour:
        """``"nxdomain,soa_minimum=60"`` -> Behaviour; used by the command line."""
        values: dict[str, object] = {}
        for item in filter(None, spec.split(",")):
            key, sep, text = item.partition("=")
            if not sep:
                key, text = "kind", item
            values[key] = _FIELD_PARSERS[key](text)
        return cls(**values)  # type: ignore[arg-type]


_FIELD_PARSERS = {
    "kind": str,
    "ttl": int,
    "soa_minimum": int,
    "cname_to": str,
    "big": lambda text: text.lower() in ("1", "true", "yes"),
    "delay": float,
    "bogus": str,
}


class ReceivedQuery(NamedTuple):
    """One query as received; ``qname`` is lower-case without the trailing dot."""

    transport: Literal["udp", "tcp"]
    qname: str
    qtype: str
    raw: bytes

    @property
    def id(self) -> int:
        return int.from_bytes(self.raw[:2], "big")

    @property
    def rd(self) -> bool:
        return bool(self.raw[2] & 0x01)

    @property
    def cd(self) -> bool:
        return bool(self.raw[3] & 0x10)

    @property
    def edns_payload(self) -> int | None:
        """The UDP payload size of the query's OPT record; None without OPT."""
        opt = _opt_record(DNSRecord.parse(self.raw))
        return None if opt is None else opt.rclass

    @property
    def option_codes(self) -> list[int]:
        """The EDNS option codes the query carried (8 is Client Subnet)."""
        opt = _opt_record(DNSRecord.parse(self.raw))
        return [] if opt is None else [option.code for option in opt.rdata]

    @property
    def do(self) -> bool:
        opt = _opt_record(DNSRecord.parse(self.raw))
        return opt is not None and bool(opt.ttl & 0x8000)


def address_for(name: str) -> str:
    """The A answer for ``name``: 127.0.0.x with x stable per (case-insensitive) name."""
    return f"127.0.0.{zlib.crc32(_normal(name).encode()) % 254 + 1}"


class Responder:
    """The rule table and the answering logic, independent of sockets and threads."""

    def __init__(self, *, tcp_only: bool = False, default: Behaviour = Behaviour()):
        self.tcp_only = tcp_only
        self.default = default
        self.rules: dict[str, Behaviour] = {}
        self.queries: list[ReceivedQuery] = []
        # sources[i] is the (host, port) that sent queries[i]; kept apart so queries stay
        # plain 4-tuples.
        self.sources: list[tuple[str, int]] = []

    def set_rule(self, name: str, behaviour: Behaviour) -> None:
        """Answer ``name`` (exactly, case-insensitive) per ``behaviour``; other names get
        ``self.default``, which tests may replace to make the whole server misbehave."""
        self.rules[_normal(name)] = behaviour

    def clear(self) -> None:
        """Forget the received queries (rules stay)."""
        self.queries.clear()
        self.sources.clear()

    def handle(
        self, raw: bytes, transport: Literal["udp", "tcp"], source: tuple
    ) -> tuple[list[bytes], float, list[bytes]]:
        """Return (replies to send now, delay, replies to send after the delay)."""
        try:
            request = DNSRecord.parse(raw)
            question = request.q
        except Exception:  # noqa: BLE001 - garbage in: a real server ignores it too
            return [], 0.0, []
        qname = _normal(str(question.qname))
        self.queries.append(ReceivedQuery(transport, qname, QTYPE.get(question.qtype), raw))
        self.sources.append((source[0], source[1]))
        if transport == "udp" and self.tcp_only:
            return [], 0.0, []
        behaviour = self.rules.get(qname, self.default)
        now = [self._bogus(request, behaviour.bogus)] if behaviour.bogus else []
        if behaviour.kind == "drop":
            return now, 0.0, []
        record = self._reply(request, behaviour)
        reply = record.pack()
        if transport == "udp" and len(reply) > _udp_limit(request):
            reply = self._truncated(request, record.header.rcode)
        return now, behaviour.delay, [reply]

    def _reply(self, request: DNSRecord, behaviour: Behaviour) -> DNSRecord:
        reply = _skeleton(request)
        if behaviour.kind in ("servfail", "refused"):
            reply.header.rcode = RCODE.SERVFAIL if behaviour.kind == "servfail" else RCODE.REFUSED
            return reply
        question = request.q
        rcode, answers, authority = self._lookup(str(question.qname), question.qtype, behaviour, 0)
        reply.header.rcode = rcode
        for rr in answers:
            reply.add_answer(rr)
        for rr in authority:
            reply.add_auth(rr)
        return reply

    def _lookup(
        self, name: str, qtype: int, behaviour: Behaviour, depth: int
    ) -> tuple[int, list[RR], list[RR]]:
        """Answer ``name``/``qtype`` per its rule, following CNAME chains."""
        if behaviour.cname_to and qtype != QTYPE.CNAME and depth < MAX_CNAME_CHAIN:
            target = behaviour.cname_to
            cname = RR(name, QTYPE.CNAME, rdata=CNAME(target), ttl=behaviour.ttl)
            next_rule = self.rules.get(_normal(target), self.default)
            rcode, answers, authority = self._lookup(target, qtype, next_rule, depth + 1)
            return rcode, [cname, *answers], authority
        if behaviour.kind == "nxdomain":
            return RCODE.NXDOMAIN, [], [_soa(name, behaviour)]
        answers = [] if behaviour.kind == "nodata" else _records(name, qtype, behaviour)
        return RCODE.NOERROR, answers, [] if answers else [_soa(name, behaviour)]

    @staticmethod
    def _truncated(request: DNSRecord, rcode: int) -> bytes:
        """Header (TC=1) and question only, as a server sends when the answer cannot fit."""
        reply = _skeleton(request)
        reply.header.tc = 1
        reply.header.rcode = rcode
        return reply.pack()

    @staticmethod
    def _bogus(request: DNSRecord, how: str) -> bytes:
        reply = _skeleton(request)
        if how == "wrong_id":
            reply.header.id = (request.header.id + 1) & 0xFFFF
        else:
            question = request.q
            name = str(question.qname)
            if how == "same_length_question":
                # same length on the wire, so only comparing the name itself can tell
                spoofed = DNSLabel(("x" if name[0] != "x" else "y") + name[1:])
            else:
                spoofed = DNSLabel("spoofed." + name)
            reply.questions = [DNSQuestion(spoofed, question.qtype, question.qclass)]
        reply.add_answer(RR(reply.q.qname, QTYPE.A, rdata=A(SPOOFED_A), ttl=300))
        return reply.pack()


def _normal(name: str) -> str:
    return name.rstrip(".").lower()


def _opt_record(record: DNSRecord) -> RR | None:
    return next((rr for rr in record.ar if rr.rtype == QTYPE.OPT), None)


def _udp_limit(request: DNSRecord) -> int:
    opt = _opt_record(request)
    return 512 if opt is None else max(512, min(opt.rclass, EDNS_PAYLOAD))


def _skeleton(request: DNSRecord) -> DNSRecord:
    """An empty reply to ``request`` (ID, flags and question copied), with EDNS echoed."""
    reply = request.reply()
    opt = _opt_record(request)
    if opt is not None:
        reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD, flags="do" if opt.ttl & 0x8000 else ""))
    return reply


def _soa(name: str, behaviour: Behaviour) -> RR:
    """An SOA for the name's parent zone, so negative answers carry a negative-caching TTL."""
    zone = name.rstrip(".").partition(".")[2] or "."
    times = (1, 3600, 600, 86400, behaviour.soa_minimum)
    return RR(zone, QTYPE.SOA, rdata=SOA("ns.fake.", "hostmaster.fake.", times), ttl=behaviour.ttl)


def _records(name: str, qtype: int, behaviour: Behaviour) -> list[RR]:
    count = BIG_ANSWER_RECORDS if behaviour.big else 1
    if qtype == QTYPE.A:
        if behaviour.big:
            rdatas = [A(f"127.0.1.{i}") for i in range(1, count + 1)]
        else:
            rdatas = [A(address_for(name))]
    elif qtype == QTYPE.AAAA:
        rdatas = [AAAA("::1")]
    elif qtype == QTYPE.MX:
        rdatas = [MX(f"mail{i}.{_normal(name)}", 10 + i) for i in range(count)]
    elif qtype == QTYPE.TXT:
        rdatas = [TXT(f"fake {_normal(name)} {i}") for i in range(count)]
    else:
        return []
    return [RR(name, qtype, rdata=rdata, ttl=behaviour.ttl) for rdata in rdatas]


# --- sockets -------------------------------------------------------------------------------


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Bind UDP and TCP on the same port; with port 0 retry until a free pair is found."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(64)
            return udp, tcp
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
    raise OSError(f"no free UDP+TCP port pair on {host}")


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder):
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        now, delay, later = self.responder.handle(data, "udp", addr)
        _schedule(now, delay, later, lambda reply: self.transport.sendto(reply, addr))


async def _serve_tcp(
    responder: Responder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer length-prefixed queries (RFC 7766), pipelined, until the client closes."""
    peer = writer.get_extra_info("peername")

    def send(reply: bytes) -> None:
        if not writer.is_closing():
            writer.write(len(reply).to_bytes(2, "big") + reply)

    try:
        while True:
            length = int.from_bytes(await reader.readexactly(2), "big")
            now, delay, later = responder.handle(await reader.readexactly(length), "tcp", peer)
            _schedule(now, delay, later, send)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _schedule(now: list[bytes], delay: float, later: list[bytes], send) -> None:
    for reply in now:
        send(reply)
    for reply in later:
        if delay:
            asyncio.get_running_loop().call_later(delay, send, reply)
        else:
            send(reply)


async def _start(responder: Responder, host: str, port: int):
    """Start serving; return (udp transport, tcp server, bound port)."""
    loop = asyncio.get_running_loop()
    udp_sock, tcp_sock = _bind_pair(host, port)
    bound = udp_sock.getsockname()[1]
    udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(responder), sock=udp_sock)
    tcp = await asyncio.start_server(lambda r, w: _serve_tcp(responder, r, w), sock=tcp_sock)
    return udp, tcp, bound


class FakeUpstream(Responder):
    """The fake served from a daemon thread; use as a context manager.

    ``queries``/``sources`` are filled from the server thread; read them after the
    exchange you are checking has completed.
    """

    def __init__(
        self, host: str = "127.0.0.1", *, tcp_only: bool = False, default: Behaviour = Behaviour()
    ):
        super().__init__(tcp_only=tcp_only, default=default)
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-upstream", daemon=True
        )
        self._servers: tuple = ()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port)

    def server_config(
        self, protocol: Literal["udp", "tcp"] = "udp", name: str = ""
    ) -> UpstreamServerConfig:
        """An ``UpstreamServerConfig`` pointing at this fake."""
        return UpstreamServerConfig(self.endpoint, protocol, name)

    def start(self) -> FakeUpstream:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(_start(self, self.host, 0), self._loop)
        udp, tcp, self.port = future.result(timeout=5)
        self._servers = (udp, tcp)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            udp, tcp = self._servers
            udp.close()
            tcp.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._servers:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
            self._servers = ()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def _main(args: argparse.Namespace) -> None:
    responder = Responder(tcp_only=args.tcp_only)
    for rule in args.rule:
        name, _, spec = rule.partition("=")
        responder.set_rule(name, Behaviour.parse(spec))
    udp, tcp, port = await _start(responder, args.host, args.port)
    print(port, flush=True)
    try:
        await asyncio.sleep(args.lifetime)
    finally:
        udp.close()
        tcp.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port and print it")
    parser.add_argument("--tcp-only", action="store_true", help="never answer over UDP")
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="NAME=KIND[,FIELD=VALUE...]",
        help=f"per-name behaviour; fields: {', '.join(_FIELD_PARSERS)}",
    )
    parser.add_argument("--lifetime", type=float, default=600.0, help="exit after N seconds")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
