"""The query path: parse → identify the client → decide → answer → record.

``QueryPipeline.answer`` is called by the listeners for every packet. Whatever can be answered
without waiting (blocks, cache hits, errors) is returned as bytes at once, with no coroutine
or task created; only a query that must go upstream returns an awaitable. This split is what
lets one Python process answer tens of thousands of queries a second.
"""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable

from filterdns.policy.engine import Decision, PolicyEngine
from filterdns.resolver.access import NetworkSet, RateLimiter
from filterdns.resolver.blocking import BlockResponder
from filterdns.resolver.events import QueryEvent
from filterdns.resolver.forward import Forwarder
from filterdns.identity.roster import Identity
from filterdns.resolver.identify import Client, ClientIdentifier
from filterdns.resolver.recorder import Recorder
from filterdns.resolver.upstream import UpstreamOverloaded, UpstreamUnavailable
from filterdns.wire.answer import (
    EDE_NETWORK_ERROR,
    SERVER_UDP_PAYLOAD,
    cname_rewrite,
    edns_options,
    error_response,
    finish_for_client,
    minimal_any_response,
    truncated_response,
)
from filterdns.wire.query import (
    CLASS_IN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_AXFR,
    TYPE_IXFR,
    Query,
    QueryError,
    parse_query,
)
from filterdns.wire.rcodes import RCODE_BADVERS, RCODE_NOERROR, RCODE_REFUSED, RCODE_SERVFAIL
from filterdns.wire.records import fit_to_size

log = logging.getLogger("filterdns.query")

# TCP answers are limited only by the 16-bit length prefix.
TCP_MAX_MESSAGE = 65535
# Distinct packets remembered per second at most (a flood of distinct names just skips it).
MEMO_LIMIT = 50_000

Answer = bytes | None | Awaitable[bytes | None]


class QueryPipeline:
    """Everything between a received packet and the packet sent back."""

    def __init__(
        self,
        identifier: ClientIdentifier,
        policy: PolicyEngine,
        blocker: BlockResponder,
        forwarder: Forwarder,
        recorder: Recorder,
        *,
        allowed_networks: NetworkSet,
        rate_limiter: RateLimiter,
        any_queries: str = "minimal",
        clock: Callable[[], float] = time.time,
    ):
        self.identifier = identifier
        self.policy = policy
        self.blocker = blocker
        self.forwarder = forwarder
        self.recorder = recorder
        self.allowed_networks = allowed_networks
        self.rate_limiter = rate_limiter
        self.any_queries = any_queries
        self.refused_access = 0
        self._clock = clock
        self._memo: dict[tuple[bytes, str, str], tuple] = {}
        self._memo_second = 0

    def replace_policy(self, policy: PolicyEngine, blocker: BlockResponder, identifier: ClientIdentifier) -> None:
        """Swap in a new policy (a reload): one assignment each, between two packets. Answers
        remembered under the old policy are forgotten (a new engine counts generations anew)."""
        self.policy, self.blocker, self.identifier = policy, blocker, identifier
        self._memo.clear()

    def answer(self, raw: bytes, peer: str, transport: str, identity: Identity | None = None) -> Answer:
        """Answer one packet from ``peer`` over ``transport`` ("udp", "tcp", "doh" or "dot").
        Returns the reply bytes, None to send nothing, or an awaitable resolving to either when
        an upstream must be asked. ``identity`` is who a DoH or DoT client said it is (see
        ``ClientIdentifier.identify``)."""
        started = time.monotonic()
        if transport == "udp" and self.rate_limiter.enabled:
            verdict = self.rate_limiter.check(peer, started)
            if verdict != "ok":
                return self._limited(raw, verdict)
        # The answer memo: within one second, the same packet (but for its ID) from the same
        # peer gets the same answer, unless the policy changed. A class refreshing the same
        # page sends exactly that, and skips parsing, deciding and the cache here.
        second = int(started)
        if second != self._memo_second:
            self._memo.clear()
            self._memo_second = second
        memo_key = (raw[2:], peer, transport, identity)
        remembered = self._memo.get(memo_key)
        if remembered is not None and remembered[0] == self.policy.generation:
            _, reply_tail, event_head, event_tail = remembered
            self.recorder.record(
                QueryEvent(self._clock(), *event_head, (time.monotonic() - started) * 1000.0, *event_tail)
            )
            return raw[:2] + reply_tail
        try:
            query = parse_query(raw)
        except QueryError as error:
            if error.rcode is None:
                return None
            return error_response(raw, error.rcode, error.question_end)
        if peer not in self.allowed_networks and (identity is None or not identity.known):
            # A take-home device naming a pupil of the roster is served from anywhere (its
            # DoH/DoT stream cannot be used for reflection); anyone else only from inside.
            self.refused_access += 1
            return error_response(raw, RCODE_REFUSED, query.question_end, query)
        if query.edns_version:
            return error_response(raw, RCODE_BADVERS, query.question_end, query)
        qtype = query.qtype
        if qtype in (TYPE_AXFR, TYPE_IXFR) or query.qclass != CLASS_IN:
            # Zone transfers are not ours to give, and CHAOS queries would ask the upstream
            # to identify itself.
            return error_response(raw, RCODE_REFUSED, query.question_end, query)
        if qtype == TYPE_ANY:
            if self.any_queries == "refuse":
                return error_response(raw, RCODE_REFUSED, query.question_end, query)
            return minimal_any_response(query)

        # UDP answers fit the client's EDNS buffer (512 without EDNS) and never exceed what we
        # advertise ourselves, to stay clear of IP fragmentation (DNS Flag Day 2020). Streams
        # (TCP, DoT, DoH) carry up to 64 KiB.
        max_size = min(query.udp_size, SERVER_UDP_PAYLOAD) if transport == "udp" else TCP_MAX_MESSAGE
        client = self.identifier.identify(peer, query, identity)
        decision = self.policy.decide(client.policy, query.name, query.qtype)
        subnet = client.subnet
        if decision.action == "block":
            reply = self.blocker.respond(query, decision, subnet)
            self._record(query, client, decision, started, transport, "policy", reply, memo_key=memo_key)
            return reply
        if decision.action == "rewrite":
            return self._rewrite(query, client, decision, started, transport, max_size)

        cached = self.forwarder.cached(query)
        if cached is not None:
            blocked = self._blocked_alias(query, client)
            if blocked is not None:
                return self._block_alias(query, client, blocked, started, transport)
            reply = fit_to_size(self._finish(cached, query, subnet), max_size)
            self._record(query, client, decision, started, transport, "cache", reply, memo_key=memo_key)
            return reply
        return self._forward(query, client, decision, started, transport, max_size)

    async def _forward(
        self, query: Query, client: Client, decision: Decision, started: float, transport: str, max_size: int
    ) -> bytes:
        subnet = client.subnet
        try:
            response, label = await self.forwarder.resolve(query)
        except (UpstreamUnavailable, UpstreamOverloaded) as error:
            options = edns_options(EDE_NETWORK_ERROR, str(error), subnet) if query.has_opt else b""
            reply = error_response(query.raw, RCODE_SERVFAIL, query.question_end, query, options)
            self._record(query, client, decision, started, transport, "", reply, verdict="error")
            return reply
        blocked = self._blocked_alias(query, client)
        if blocked is not None:
            return self._block_alias(query, client, blocked, started, transport)
        reply = fit_to_size(self._finish(response, query, subnet), max_size)
        self._record(query, client, decision, started, transport, label, reply)
        return reply

    def _rewrite(
        self, query: Query, client: Client, decision: Decision, started: float, transport: str, max_size: int
    ) -> Answer:
        """Safe search: ``name CNAME target`` plus the target's addresses. The target is
        resolved like any other query (cache first). The combined answer is cached under its
        own key, never under the original name, so turning safe search off takes effect at once."""
        if query.qtype not in (TYPE_A, TYPE_AAAA):
            # Other types of a search engine's name (HTTPS/SVCB hints, MX...) would leak the
            # unfiltered address; answer with the alias alone.
            body = cname_rewrite(query, decision.rewrite_target, None)
            return self._finish_rewrite(query, client, decision, started, transport, max_size, body)
        body = self.forwarder.cached_rewrite(query, decision.rewrite_target)
        if body is not None:
            return self._finish_rewrite(query, client, decision, started, transport, max_size, body)
        target = self.forwarder.target_query(query, decision.rewrite_target)
        cached = self.forwarder.cached(target)
        if cached is not None:
            body = self.forwarder.rewrite(query, decision.rewrite_target, cached)
            return self._finish_rewrite(query, client, decision, started, transport, max_size, body)
        return self._rewrite_upstream(query, client, decision, started, transport, max_size, target)

    async def _rewrite_upstream(
        self, query: Query, client: Client, decision: Decision, started: float, transport: str, max_size: int, target: Query
    ) -> bytes:
        try:
            response, _ = await self.forwarder.resolve(target)
        except (UpstreamUnavailable, UpstreamOverloaded):
            reply = error_response(query.raw, RCODE_SERVFAIL, query.question_end, query)
            self._record(query, client, decision, started, transport, "", reply, verdict="error")
            return reply
        body = self.forwarder.rewrite(query, decision.rewrite_target, response)
        return self._finish_rewrite(query, client, decision, started, transport, max_size, body)

    def _finish_rewrite(
        self,
        query: Query,
        client: Client,
        decision: Decision,
        started: float,
        transport: str,
        max_size: int,
        body: bytes,
    ) -> bytes:
        reply = fit_to_size(self._finish(body, query, client.subnet), max_size)
        self._record(query, client, decision, started, transport, "policy", reply, verdict="rewritten")
        return reply

    def _blocked_alias(self, query: Query, client: Client) -> Decision | None:
        """CNAME inspection: the first alias in the answer that the group's policy blocks."""
        for target in self.forwarder.cname_targets(query):
            decision = self.policy.decide(client.policy, target, query.qtype)
            if decision.action == "block":
                return decision
        return None

    def _block_alias(self, query: Query, client: Client, decision: Decision, started: float, transport: str) -> bytes:
        reply = self.blocker.respond(query, decision, client.subnet)
        self._record(query, client, decision, started, transport, "policy", reply, reason_prefix="cname:")
        return reply

    @staticmethod
    def _finish(message: bytes, query: Query, subnet) -> bytes:
        if not query.has_opt:
            return message
        return finish_for_client(message, query, edns_options(client_subnet=subnet) if subnet is not None else b"")

    def _limited(self, raw: bytes, verdict: str) -> bytes | None:
        """Rate limiting: a truncated answer for a "slip" (the client retries over TCP)."""
        if verdict != "slip":
            return None
        try:
            return truncated_response(parse_query(raw))
        except QueryError:
            return None

    def _record(
        self,
        query: Query,
        client: Client,
        decision: Decision,
        started: float,
        transport: str,
        answered_by: str,
        reply: bytes,
        *,
        verdict: str | None = None,
        reason_prefix: str = "",
        memo_key: tuple | None = None,
    ) -> None:
        """Hand the query's event to the recorder; with ``memo_key``, also remember the answer
        for identical packets in the same second."""
        if verdict is None:
            verdict = "blocked" if decision.action == "block" else "allowed"
        event_head = (
            client.address,
            client.group,
            query.name,
            query.qtype,
            verdict,
            reason_prefix + decision.reason,
            decision.category,
            reply[3] & 0xF if len(reply) > 3 else RCODE_NOERROR,
        )
        event_tail = (answered_by, transport, client.mac or "", client.identity)
        # Positional arguments: measured at a third of the cost of keywords on this path.
        self.recorder.record(QueryEvent(self._clock(), *event_head, (time.monotonic() - started) * 1000.0, *event_tail))
        if memo_key is not None and len(self._memo) < MEMO_LIMIT:
            self._memo[memo_key] = (self.policy.generation, reply[2:], event_head, event_tail)
