"""Forward cache misses to the configured upstream resolvers.

Every cache miss passes through here, so the common case is kept to a handful of
operations on bytes: pick a long-lived connected UDP socket, stamp a fresh random ID on
the client's query, send it, and wake the waiting coroutine when a reply with that ID and
the same question arrives. No dnslib, no socket per query.

Spoofing resistance (an off-path attacker racing the real upstream) comes from three
things: a random 16-bit ID per query, a random source port per socket (sockets are
replaced every few thousand queries or minutes so ports keep changing), and a question
check (name case-insensitively, type, class) on every reply. Connected sockets also make
the kernel drop datagrams from any address other than the upstream's.

Failover and health: a timeout, network error, SERVFAIL or REFUSED moves on to the next
server within the same overall time budget (``UpstreamConfig.timeout``). Servers that fail
``failure_threshold`` times in a row rest for ``retry_after`` seconds; after that one query
probes them first. When every server is resting all are asked anyway, in order: there is
nothing better to do. Among healthy servers the fastest (smoothed latency) is asked first,
with config order deciding between servers of similar speed.

The pool forwards whatever EDNS the query carries and may return a reply larger than the
client's UDP limit (after a TCP retry); truncating for the client is the listener's job.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from filterdns.config.model import UpstreamConfig, UpstreamServerConfig
from filterdns.wire.rcodes import RCODE_REFUSED, RCODE_SERVFAIL

SOCKETS_PER_SERVER = 16
# A socket (and so its source port) is replaced after this many queries or seconds.
ROTATE_AFTER_QUERIES = 4096
ROTATE_AFTER_SECONDS = 300.0
# Weight of the newest sample in the smoothed latency.
EWMA_WEIGHT = 0.2
# Latencies are compared in buckets: below about LATENCY_FLOOR_MS, or within a factor of
# LATENCY_BAND of each other, servers count as equally fast and config order decides.
# This keeps the preference from flapping on jitter.
LATENCY_FLOOR_MS = 5.0
LATENCY_BAND = 1.25

_FLAG_QR = 0x80  # in the third header byte
_FLAG_TC = 0x02  # in the third header byte
_MAX_MESSAGE = 65535
# UDP timeouts are kept in slots of this many seconds, one loop timer per slot.
_DEADLINE_SLOT = 0.01

# (lower-cased wire-format question name, type and class bytes)
_Question = tuple[bytes, bytes]


class UpstreamError(Exception):
    """Base class for failures the caller answers with SERVFAIL."""


class UpstreamUnavailable(UpstreamError):
    """No upstream gave a usable reply within the timeout."""


class UpstreamOverloaded(UpstreamError):
    """Too many queries are already waiting for upstreams; this one was not sent."""


class UpstreamObserver(Protocol):
    """Receives per-upstream outcomes, e.g. to feed metrics, without this module importing them.

    ``kind`` is one of "timeout", "servfail", "refused", "tcp" (connection failed or closed),
    "network" (send error, ICMP unreachable) or "mismatch". A mismatch is a reply no query
    is waiting for (wrong ID or question, late, duplicate, malformed); it is dropped and
    does not count as a failed attempt.
    """

    def on_upstream_answer(self, label: str, seconds: float) -> None: ...

    def on_upstream_error(self, label: str, kind: str) -> None: ...


@dataclass(frozen=True, slots=True)
class UpstreamHealth:
    """A snapshot of one upstream's state, for status pages and tests."""

    label: str
    healthy: bool
    consecutive_failures: int
    latency_ewma_ms: float | None  # None until the first answer
    queries: int  # attempts sent (a TC retry over TCP counts as part of the same attempt)
    errors: int  # failed attempts (timeouts, errors, SERVFAIL, REFUSED)


class _AttemptFailed(Exception):
    """One server did not give a usable reply; ``kind`` as in ``UpstreamObserver``."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class _Channel:
    """Queries in flight on one socket or connection, keyed by ID, and the reply check.

    ``waiting[id] = (future, question, deadline slot)``. Whoever settles a query removes
    its entry: the reply, the timeout or a connection failure. A late or duplicate reply
    then finds no entry and is counted as a mismatch.
    """

    __slots__ = ("server", "waiting")

    def __init__(self, server: _Server):
        self.server = server
        self.waiting: dict[int, tuple[asyncio.Future[bytes], _Question, int]] = {}

    def new_id(self, getrandbits: Callable[[int], int]) -> int:
        qid = getrandbits(16)
        while qid in self.waiting:
            qid = getrandbits(16)
        return qid

    def deliver(self, data: bytes) -> None:
        """Wake the query this reply answers; anything else is counted and dropped."""
        if len(data) >= 12:
            qid = (data[0] << 8) | data[1]
            entry = self.waiting.get(qid)
            if entry is not None:
                future, (name, type_class), _ = entry
                end = 12 + len(name)
                if (
                    data[2] & _FLAG_QR
                    and data[4] == 0
                    and data[5] == 1
                    and data[12:end].lower() == name
                    and data[end : end + 4] == type_class
                ):
                    del self.waiting[qid]
                    if not future.done():  # the waiting coroutine may have been cancelled
                        future.set_result(data)
                    return
        self.server.report_error("mismatch")

    def forget(self, qid: int, future: asyncio.Future[bytes]) -> None:
        """Drop the entry for ``qid`` if it still belongs to ``future`` (IDs are reused)."""
        entry = self.waiting.get(qid)
        if entry is not None and entry[0] is future:
            del self.waiting[qid]

    def fail_all(self, exc: BaseException) -> None:
        for future, _, _ in self.waiting.values():
            if not future.done():
                future.set_exception(exc)
        self.waiting.clear()


class _UdpSocket(_Channel):
    """A non-blocking UDP socket connected to one upstream, read via ``loop.add_reader``."""

    __slots__ = ("loop", "sock", "sent", "born", "serial")

    def __init__(
        self, server: _Server, loop: asyncio.AbstractEventLoop, now: float, serial: int
    ):
        super().__init__(server)
        endpoint = server.config.endpoint
        family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # connect() makes the kernel pick a random ephemeral source port and drop
            # datagrams from anyone but the upstream.
            sock.connect((endpoint.host, endpoint.port))
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self.loop = loop
        self.sock = sock
        self.sent = 0
        self.born = now
        self.serial = serial  # names the socket in _UdpSockets

    def _readable(self) -> None:
        try:
            data = self.sock.recv(_MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            # An ICMP error (port unreachable, ...) on a connected socket: the upstream
            # is not there, so nothing waiting on this socket will be answered.
            self.fail_all(_AttemptFailed("network"))
            return
        self.deliver(data)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        self.fail_all(_AttemptFailed("network"))


class _UdpSockets:
    """All UDP sockets of a pool, by serial number, and the timeouts of their queries.

    Timeouts are kept in ``_DEADLINE_SLOT`` slots: one loop timer per slot instead of one
    per query, which was most of the cost of a timer on the hot path. A query may time out
    up to one slot early, never late. Slots hold plain ints (socket serial << 16 | ID), not
    references: a second's worth of tuples holding futures kept the garbage collector busy.
    """

    __slots__ = ("loop", "sockets", "slots", "timers", "next_serial")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.sockets: dict[int, _UdpSocket] = {}
        self.slots: dict[int, list[int]] = {}
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.next_serial = 0

    def new_socket(self, server: _Server, now: float) -> _UdpSocket:
        self.next_serial += 1
        sock = _UdpSocket(server, self.loop, now, self.next_serial)
        self.sockets[sock.serial] = sock
        return sock

    def close_socket(self, sock: _UdpSocket) -> None:
        self.sockets.pop(sock.serial, None)
        sock.close()

    def deadline_slot(self, deadline: float, sock: _UdpSocket, qid: int) -> int:
        """Register the query's deadline; returns the slot to keep in its waiting entry."""
        slot = int(deadline / _DEADLINE_SLOT)
        keys = self.slots.get(slot)
        if keys is None:
            keys = self.slots[slot] = []
            self.timers[slot] = self.loop.call_at(slot * _DEADLINE_SLOT, self._expire, slot)
        keys.append(sock.serial << 16 | qid)
        return slot

    def _expire(self, slot: int) -> None:
        del self.timers[slot]
        for key in self.slots.pop(slot):
            sock = self.sockets.get(key >> 16)
            if sock is None:
                continue
            qid = key & 0xFFFF
            entry = sock.waiting.get(qid)
            # The slot check skips a newer query that reused the ID. Entries of cancelled
            # queries (future already done) are cleared here too.
            if entry is not None and entry[2] == slot:
                del sock.waiting[qid]
                if not entry[0].done():
                    entry[0].set_exception(_AttemptFailed("timeout"))

    def close(self, exc: BaseException) -> None:
        """Close every socket, replaced ones included; their waiting queries get ``exc``."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.slots.clear()
        for sock in self.sockets.values():
            sock.fail_all(exc)
            sock.close()
        self.sockets.clear()


class _TcpChannel(_Channel):
    """One persistent, pipelined TCP connection (RFC 7766), opened on first use.

    Used for every query to a TCP-only upstream and for retries of truncated UDP replies.
    """

    __slots__ = ("writer", "reader_task", "lock")

    def __init__(self, server: _Server):
        super().__init__(server)
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    async def send(self, message: bytes) -> bool:
        """Send on the open connection, opening one if needed; True if it was already open."""
        reused = True
        async with self.lock:
            if self.writer is None:
                endpoint = self.server.config.endpoint
                reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
                self.writer = writer
                self.reader_task = asyncio.create_task(self._read(reader, writer))
                reused = False
        self.writer.write(len(message).to_bytes(2, "big") + message)
        return reused

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                self.deliver(await reader.readexactly(size))
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            if self.writer is writer:
                self.writer = None
            writer.close()
            self.fail_all(_AttemptFailed("tcp"))

    async def close(self) -> None:
        if self.reader_task is not None:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)


class _Server:
    """One upstream: its sockets and its health."""

    __slots__ = (
        "config",
        "label",
        "index",
        "tcp_only",
        "observer",
        "sockets",
        "next_socket",
        "tcp",
        "failures",
        "retry_at",
        "latency_ms",
        "bucket",
        "queries",
        "errors",
    )

    def __init__(self, config: UpstreamServerConfig, index: int, observer: UpstreamObserver | None):
        self.config = config
        self.label = config.label
        self.index = index
        self.tcp_only = config.protocol == "tcp"
        self.observer = observer
        self.sockets: list[_UdpSocket] = []
        self.next_socket = 0
        self.tcp = _TcpChannel(self)
        self.failures = 0
        self.retry_at = 0.0
        self.latency_ms: float | None = None
        self.bucket = 0  # latency bucket; unmeasured servers rank as fast so they get tried
        self.queries = 0
        self.errors = 0

    def report_error(self, kind: str) -> None:
        if self.observer is not None:
            self.observer.on_upstream_error(self.label, kind)


class UpstreamPool:
    """Sends queries to the upstream resolvers of an ``UpstreamConfig``; see the module doc."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        observer: UpstreamObserver | None = None,
        max_pending: int = 10000,
    ):
        """``clock`` is the time source of health tracking, rest periods and latencies
        (tests inject one); timeouts run on the event loop's timers."""
        if not config.servers:
            raise ValueError("no upstream servers configured")
        self._config = config
        self._clock = clock
        self._max_pending = max_pending
        self._servers = [_Server(s, i, observer) for i, s in enumerate(config.servers)]
        self._order = list(self._servers)  # preference among healthy servers
        self._down = 0  # how many servers are resting
        self._pending = 0
        self._random = random.Random(os.urandom(16))
        self._getrandbits = self._random.getrandbits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: _UdpSockets | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Queries currently waiting for an upstream."""
        return self._pending

    async def start(self) -> None:
        """Open the UDP sockets on the running loop (TCP connections open on first use)."""
        self._loop = loop = asyncio.get_running_loop()
        self._udp = udp = _UdpSockets(loop)
        for server in self._servers:
            if not server.tcp_only:
                server.sockets = [
                    udp.new_socket(server, loop.time()) for _ in range(SOCKETS_PER_SERVER)
                ]

    async def close(self) -> None:
        """Close every socket; queries still waiting fail with ``UpstreamUnavailable``."""
        self._closed = True
        closed = UpstreamUnavailable("upstream pool closed")
        if self._udp is not None:
            self._udp.close(closed)
        for server in self._servers:
            server.sockets = []
            server.tcp.fail_all(closed)
            await server.tcp.close()

    def health(self) -> list[UpstreamHealth]:
        """One snapshot per configured server, in config order."""
        threshold = self._config.failure_threshold
        return [
            UpstreamHealth(
                label=s.label,
                healthy=s.failures < threshold,
                consecutive_failures=s.failures,
                latency_ewma_ms=s.latency_ms,
                queries=s.queries,
                errors=s.errors,
            )
            for s in self._servers
        ]

    async def resolve(self, query: bytes) -> tuple[bytes, str]:
        """Forward ``query`` (wire format, one question) and return (reply, upstream label).

        The reply carries the client's ID and its question bytes exactly as sent (mixed
        case included). Raises ``UpstreamOverloaded`` at once when ``max_pending`` queries
        are already waiting, ``UpstreamUnavailable`` when no server gave any reply in time,
        and ``ValueError`` for a query without exactly one well-formed question.
        """
        if self._loop is None or self._closed:
            raise UpstreamUnavailable("upstream pool is not running")
        if self._pending >= self._max_pending:
            raise UpstreamOverloaded(f"{self._pending} queries already waiting for upstreams")
        end = _question_end(query)
        loop = self._loop
        # What a reply must echo: the lower-cased name, and type and class exactly.
        question = (query[12 : end - 4].lower(), query[end - 4 : end])
        candidates = self._candidates()
        deadline = loop.time() + self._config.timeout
        failed_reply: tuple[bytes, _Server] | None = None
        self._pending += 1
        try:
            for position, server in enumerate(candidates):
                now = loop.time()
                if now >= deadline:
                    break
                # Share what is left equally among the servers not yet tried, so a dead
                # first server cannot use up the whole budget.
                attempt_deadline = now + (deadline - now) / (len(candidates) - position)
                started = self._clock()
                server.queries += 1
                try:
                    if server.tcp_only:
                        reply = await self._ask_tcp(server, query, question, attempt_deadline)
                    else:
                        reply = await self._send_udp(server, query, question, now, attempt_deadline)
                        if reply[2] & _FLAG_TC:
                            reply = await self._ask_tcp(server, query, question, attempt_deadline)
                except _AttemptFailed as failure:
                    self._failed(server, failure.kind)
                    continue
                rcode = reply[3] & 0x0F
                if rcode == RCODE_SERVFAIL or rcode == RCODE_REFUSED:
                    self._failed(server, "servfail" if rcode == RCODE_SERVFAIL else "refused")
                    failed_reply = (reply, server)
                    continue
                self._answered(server, self._clock() - started)
                return _restore(query, end, reply), server.label
        finally:
            self._pending -= 1
        if failed_reply is not None:
            return _restore(query, end, failed_reply[0]), failed_reply[1].label
        raise UpstreamUnavailable("no upstream answered in time")

    def _send_udp(
        self, server: _Server, query: bytes, question: _Question, now: float, deadline: float
    ) -> asyncio.Future[bytes]:
        """Send on the server's next UDP socket. The future gets the reply or, on timeout or
        network error, ``_AttemptFailed``. A plain function returning a future, not a
        coroutine: one frame less on the hot path."""
        future = self._loop.create_future()
        try:
            sock = self._udp_socket(server, now)
            qid = sock.new_id(self._getrandbits)
            sock.sock.send(qid.to_bytes(2, "big") + query[2:])
        except OSError:
            future.set_exception(_AttemptFailed("network"))
            return future
        sock.waiting[qid] = (future, question, self._udp.deadline_slot(deadline, sock, qid))
        return future

    async def _ask_tcp(
        self, server: _Server, query: bytes, question: _Question, deadline: float
    ) -> bytes:
        try:
            async with asyncio.timeout_at(deadline):
                return await self._tcp_exchange(server.tcp, query, question, retry=True)
        except TimeoutError:
            raise _AttemptFailed("timeout") from None
        except OSError:
            raise _AttemptFailed("tcp") from None

    async def _tcp_exchange(
        self, channel: _TcpChannel, query: bytes, question: _Question, *, retry: bool
    ) -> bytes:
        """One query over the TCP connection. Servers may close idle connections (RFC 7766),
        possibly just as we send, so a query lost with a reused connection is sent once
        more on a fresh one."""
        qid = channel.new_id(self._getrandbits)
        future = self._loop.create_future()
        channel.waiting[qid] = (future, question, 0)  # the caller's timeout_at bounds it
        try:
            reused = await channel.send(qid.to_bytes(2, "big") + query[2:])
            return await future
        except _AttemptFailed:
            if not (retry and reused):
                raise
        finally:
            channel.forget(qid, future)
        return await self._tcp_exchange(channel, query, question, retry=False)

    def _udp_socket(self, server: _Server, now: float) -> _UdpSocket:
        """The next socket in rotation, replaced when it has served long enough."""
        index = server.next_socket
        server.next_socket = (index + 1) % SOCKETS_PER_SERVER
        sock = server.sockets[index]
        sock.sent += 1
        if sock.sent > ROTATE_AFTER_QUERIES or now - sock.born > ROTATE_AFTER_SECONDS:
            fresh = server.sockets[index] = self._udp.new_socket(server, now)
            self._retire(sock)
            sock = fresh
            sock.sent = 1
            # Re-seed now and then so the ID sequence cannot be learnt from long observation.
            self._random.seed(os.urandom(16))
        return sock

    def _retire(self, sock: _UdpSocket) -> None:
        """Close a replaced socket once every query sent on it has timed out at the latest."""
        delay = self._config.timeout + _DEADLINE_SLOT
        self._loop.call_later(delay, self._udp.close_socket, sock)

    # --- health ---------------------------------------------------------------------------

    def _candidates(self) -> list[_Server]:
        """Servers to try, in order: healthy ones by preference, a resting server first
        when its rest is over (the probe), and everyone if all are resting."""
        if not self._down:
            return self._order
        threshold = self._config.failure_threshold
        healthy = [s for s in self._order if s.failures < threshold]
        now = self._clock()
        for probe in self._order:
            if probe.failures >= threshold and now >= probe.retry_at:
                # One probe per rest period: the next query does not probe again.
                probe.retry_at = now + self._config.retry_after
                return [probe, *(healthy or [s for s in self._order if s is not probe])]
        return healthy or self._order

    def _failed(self, server: _Server, kind: str) -> None:
        server.errors += 1
        server.failures += 1
        if server.failures >= self._config.failure_threshold:
            if server.failures == self._config.failure_threshold:
                self._down += 1
            server.retry_at = self._clock() + self._config.retry_after
        server.report_error(kind)

    def _answered(self, server: _Server, seconds: float) -> None:
        if server.failures >= self._config.failure_threshold:
            self._down -= 1
        server.failures = 0
        ms = seconds * 1000.0
        if server.latency_ms is None:
            server.latency_ms = ms
        else:
            server.latency_ms += EWMA_WEIGHT * (ms - server.latency_ms)
        bucket = int(math.log(1.0 + server.latency_ms / LATENCY_FLOOR_MS, LATENCY_BAND))
        if bucket != server.bucket:
            server.bucket = bucket
            self._order = sorted(self._servers, key=lambda s: (s.bucket, s.index))
        if server.observer is not None:
            server.observer.on_upstream_answer(server.label, seconds)


def _question_end(query: bytes) -> int:
    """Offset just past the single question; ValueError if there is not exactly one."""
    size = len(query)
    if size < 17 or query[4] != 0 or query[5] != 1:
        raise ValueError("query must carry exactly one question")
    pos = 12
    while True:
        if pos >= size:
            raise ValueError("question name runs past the query")
        length = query[pos]
        if length == 0:
            break
        if length > 63:
            raise ValueError("compressed or invalid label in question")
        pos += length + 1
    end = pos + 5
    if end > size:
        raise ValueError("question truncated")
    return end


def _restore(query: bytes, end: int, reply: bytes) -> bytes:
    """The reply with the client's ID and question bytes (same length, checked on receipt)."""
    return query[:2] + reply[2:12] + query[12:end] + reply[end:]
