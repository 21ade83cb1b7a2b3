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
with config order deciding between servers of similar speed. A server going to rest is
logged once as a WARNING (name, address, why, how many failures) and its recovery once as
INFO: one line per change of state, never one per query.

The sockets and connections themselves, and matching replies to queries, are in
``upstream_channels``.

The pool forwards whatever EDNS the query carries and may return a reply larger than the
client's UDP limit (after a TCP retry); truncating for the client is the listener's job.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from filterdns.config.model import UpstreamConfig, UpstreamServerConfig
from filterdns.resolver.upstream_channels import (
    DEADLINE_SLOT,
    AttemptFailed,
    Question,
    TcpChannel,
    UdpSocket,
    UdpSockets,
)
from filterdns.wire.rcodes import RCODE_REFUSED, RCODE_SERVFAIL

log = logging.getLogger("filterdns.upstream")

# What each kind of failed attempt means, for the log.
FAILURE_REASONS = {
    "timeout": "no reply in time",
    "servfail": "it answered SERVFAIL",
    "refused": "it answered REFUSED",
    "tcp": "the TCP connection failed",
    "network": "the network refused (nothing listening, or unreachable)",
}

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

_FLAG_TC = 0x02  # in the third header byte


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
        self.sockets: list[UdpSocket] = []
        self.next_socket = 0
        self.tcp = TcpChannel(self)
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
        self._udp: UdpSockets | None = None
        self._closed = False

    @property
    def all_down(self) -> bool:
        """Every server is resting: a query now would most likely wait for nothing."""
        return self._down == len(self._servers)

    @property
    def pending(self) -> int:
        """Queries currently waiting for an upstream."""
        return self._pending

    async def start(self) -> None:
        """Open the UDP sockets on the running loop (TCP connections open on first use)."""
        self._loop = loop = asyncio.get_running_loop()
        self._udp = udp = UdpSockets(loop)
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
                except AttemptFailed as failure:
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
        self, server: _Server, query: bytes, question: Question, now: float, deadline: float
    ) -> asyncio.Future[bytes]:
        """Send on the server's next UDP socket. The future gets the reply or, on timeout or
        network error, ``AttemptFailed``. A plain function returning a future, not a
        coroutine: one frame less on the hot path."""
        future = self._loop.create_future()
        try:
            sock = self._udp_socket(server, now)
            qid = sock.new_id(self._getrandbits)
            sock.sock.send(qid.to_bytes(2, "big") + query[2:])
        except OSError:
            future.set_exception(AttemptFailed("network"))
            return future
        sock.waiting[qid] = (future, question, self._udp.deadline_slot(deadline, sock, qid))
        return future

    async def _ask_tcp(
        self, server: _Server, query: bytes, question: Question, deadline: float
    ) -> bytes:
        try:
            async with asyncio.timeout_at(deadline):
                return await self._tcp_exchange(server.tcp, query, question, retry=True)
        except TimeoutError:
            raise AttemptFailed("timeout") from None
        except OSError:
            raise AttemptFailed("tcp") from None

    async def _tcp_exchange(
        self, channel: TcpChannel, query: bytes, question: Question, *, retry: bool
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
        except AttemptFailed:
            if not (retry and reused):
                raise
        finally:
            channel.forget(qid, future)
        return await self._tcp_exchange(channel, query, question, retry=False)

    def _udp_socket(self, server: _Server, now: float) -> UdpSocket:
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

    def _retire(self, sock: UdpSocket) -> None:
        """Close a replaced socket once every query sent on it has timed out at the latest."""
        delay = self._config.timeout + DEADLINE_SLOT
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
                log.warning(
                    "upstream %s is unhealthy: %s, %d failures in a row; trying it again every %g s",
                    describe(server.config), FAILURE_REASONS.get(kind, kind), server.failures, self._config.retry_after,
                )  # fmt: skip
            server.retry_at = self._clock() + self._config.retry_after
        server.report_error(kind)

    def _answered(self, server: _Server, seconds: float) -> None:
        if server.failures >= self._config.failure_threshold:
            self._down -= 1
            log.info("upstream %s answers again after %d failures", describe(server.config), server.failures)
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


def describe(server: UpstreamServerConfig) -> str:
    """An upstream for the log: its name (when it has one), address and protocol."""
    where = f"{server.endpoint} over {server.protocol.upper()}"
    return f"{server.name} ({where})" if server.name else where


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
