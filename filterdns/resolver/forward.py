"""Stage 4b: answers that come from the world, through the cache or an upstream resolver.

The cache holds upstream answers without their OPT record and without anything specific to
one client, so any group may be served from it; what differs between groups is decided
before this stage. Client-specific EDNS options (Client Subnet, the MAC) are never sent
upstream: the school's network layout and pupils' devices are nobody else's business.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Coroutine

import dnslib

from filterdns.resolver.cache import AnswerCache
from filterdns.resolver.upstream import UpstreamError, UpstreamPool, UpstreamUnavailable
from filterdns.wire.answer import cname_rewrite, encode_name
from filterdns.config.model import CacheConfig
from filterdns.wire.query import AA, AD, CD, RD, TYPE_CNAME, TYPE_OPT, Query, parse_query
from filterdns.wire.rcodes import RCODE_REFUSED, RCODE_SERVFAIL
from filterdns.wire.records import WireError, parse_layout, skip_name, without_opt

# Payload size asked of upstreams when the client did not use EDNS: answers are fitted to
# each client afterwards, so one large cached answer serves every kind of client.
UPSTREAM_PAYLOAD = 1232
Z_BIT = 0x40  # in the second flags byte
# RFC 8767 5: how long a client waits for a refresh before it gets the stale answer.
STALE_ANSWER_AFTER = 1.8
STALE = "stale"  # the label of an answer served stale


class Forwarder:
    def __init__(self, cache: AnswerCache, upstream: UpstreamPool, config: CacheConfig):
        self.cache = cache
        self.upstream = upstream
        self._stale_max_age = config.serve_stale_max_age
        self._stale_ttl = config.stale_ttl
        # Names a cached answer's CNAME chain goes through, kept beside the cache so that
        # every hit can be checked against the asking group's policy without reparsing.
        self._cname_targets: dict[bytes, tuple[str, ...]] = {}
        # The refresh probing the upstreams while all of them rest (one at a time).
        self._probe: asyncio.Future | None = None

    def cached(self, query: Query) -> bytes | None:
        return self.cache.get(query.cache_key, query.id_bytes, query.question)

    def cname_targets(self, query: Query) -> tuple[str, ...]:
        return self._cname_targets.get(query.cache_key, ())

    def cached_rewrite(self, query: Query, target: str) -> bytes | None:
        """A safe-search answer built earlier for this question and target, TTLs counted down."""
        return self.cache.get(_rewrite_key(query, target), query.id_bytes, query.question)

    def rewrite(self, query: Query, target: str, target_answer: bytes) -> bytes:
        """Build the safe-search answer (``name CNAME target`` plus the target's records) and
        keep it, so it is built once per TTL rather than for every query."""
        body = cname_rewrite(query, target, target_answer)
        try:
            self.cache.put(_rewrite_key(query, target), body)
        except WireError:
            pass  # not cacheable; it is still a valid answer for this query
        return body

    @staticmethod
    def target_query(query: Query, target: str) -> Query:
        """A query for ``target`` with the same type, flags and EDNS as ``query`` (the client's
        options dropped), for resolving a safe-search target through cache and upstream."""
        question = encode_name(target) + query.raw[query.question_end - 4 : query.question_end]
        return parse_query(upstream_query(query)[:12] + question + _opt_record(query))

    async def resolve(self, query: Query) -> tuple[bytes, str]:
        """Ask upstream; returns (answer without OPT, label of the upstream that answered, or
        "stale" for an expired cached answer, RFC 8767). Raises the upstream pool's errors
        when there is nothing stale to serve.

        Without a stale answer to fall back on (the common miss: one dict lookup more) this
        just waits for the upstream. With one, the client waits at most
        ``STALE_ANSWER_AFTER`` seconds (RFC 8767's client response timer) before it gets the
        stale answer while the refresh goes on; and while every upstream is resting it gets
        the stale answer at once, one lookup at a time probing the upstreams in the
        background. Whatever a refresh brings back goes into the cache."""
        if self._stale_max_age <= 0 or not self.cache.has_stale(query.cache_key, self._stale_max_age):
            response, label, _ = await self._fetch(query)
            return response, label
        if self.upstream.all_down:
            stale = self._stale(query)
            if stale is not None:
                if self._probe is None or self._probe.done():
                    self._probe = _in_background(self._fetch(query))
                return stale, STALE
        fetch = asyncio.ensure_future(self._fetch(query))
        done, _ = await asyncio.wait((fetch,), timeout=STALE_ANSWER_AFTER)
        if not done:
            stale = self._stale(query)
            if stale is not None:
                fetch.add_done_callback(_forget_outcome)  # _fetch caches what it gets
                return stale, STALE
        try:
            response, label, usable = await fetch
        except UpstreamError:
            stale = self._stale(query)
            if stale is None:
                raise
            return stale, STALE
        if not usable:
            stale = self._stale(query)
            if stale is not None:
                return stale, STALE
        return response, label

    async def _fetch(self, query: Query) -> tuple[bytes, str, bool]:
        """Ask upstream and cache a usable answer; returns (answer without OPT, upstream label,
        False for SERVFAIL or REFUSED, which are passed on but never cached)."""
        response, label = await self.upstream.resolve(upstream_query(query))
        # We are not the authority for anything we forward (RFC 1035 4.1.1): clear AA, and
        # the reserved Z bit in case an upstream echoed it.
        response = response[:2] + bytes([response[2] & ~(AA >> 8) & 0xFF, response[3] & ~Z_BIT & 0xFF]) + response[4:]
        try:
            layout = parse_layout(response)
        except WireError as error:
            raise UpstreamUnavailable(f"malformed answer from {label}: {error}") from None
        response, layout = without_opt(response, layout)
        if layout.rcode in (RCODE_SERVFAIL, RCODE_REFUSED):
            return response, label, False
        self.cache.put(query.cache_key, response, layout)
        targets = cname_chain(response)
        if targets:
            if len(self._cname_targets) >= max(1024, self.cache.max_entries):
                self._cname_targets.pop(next(iter(self._cname_targets)))
            self._cname_targets[query.cache_key] = targets
        return response, label, True

    def _stale(self, query: Query) -> bytes | None:
        if self._stale_max_age <= 0:
            return None
        return self.cache.get_stale(
            query.cache_key, query.id_bytes, query.question, self._stale_max_age, self._stale_ttl
        )


def _in_background(refresh: Coroutine) -> asyncio.Future:
    """Run a refresh nobody waits for; its outcome is only what it leaves in the cache."""
    task = asyncio.ensure_future(refresh)
    task.add_done_callback(_forget_outcome)
    return task


def _forget_outcome(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # a failed refresh is the upstream pool's to count and log


def _rewrite_key(query: Query, target: str) -> bytes:
    """Cache key of a safe-search answer: never equal to a plain question's key."""
    return query.cache_key + b"\xffsafe-search:" + target.encode()


def upstream_query(query: Query) -> bytes:
    """The query as sent upstream: the client's RD, AD and CD bits (nothing else of its header),
    its exact question, and an OPT record carrying only the payload size and the DO bit."""
    raw = query.raw
    flags = bytes([raw[2] & (RD >> 8), raw[3] & (AD | CD)])
    return raw[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x01" + query.question + _opt_record(query)


def _opt_record(query: Query) -> bytes:
    payload = query.udp_size if query.has_opt else UPSTREAM_PAYLOAD
    return b"\x00" + struct.pack("!HHBBHH", TYPE_OPT, payload, 0, 0, 0x8000 if query.do_bit else 0, 0)


def cname_chain(response: bytes) -> tuple[str, ...]:
    """The CNAME targets in an answer section, lower-case dotted (for CNAME inspection: an
    allowed name that aliases into a blocked domain is blocked too). The answer section is
    scanned for a CNAME first; only answers that have one are parsed in full."""
    ancount = (response[6] << 8) | response[7]
    pos = skip_name(response, 12) + 4
    for _ in range(ancount):
        pos = skip_name(response, pos)
        if (response[pos] << 8) | response[pos + 1] == TYPE_CNAME:
            break
        pos += 10 + ((response[pos + 8] << 8) | response[pos + 9])
    else:
        return ()
    record = dnslib.DNSRecord.parse(response)
    return tuple(str(rr.rdata.label).rstrip(".").lower() for rr in record.rr if rr.rtype == TYPE_CNAME)
