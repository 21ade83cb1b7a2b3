"""Stage 4b: answers that come from the world, through the cache or an upstream resolver.

The cache holds upstream answers without their OPT record and without anything specific to
one client, so any group may be served from it; what differs between groups is decided
before this stage. Client-specific EDNS options (Client Subnet, the MAC) are never sent
upstream: the school's network layout and pupils' devices are nobody else's business.
"""

from __future__ import annotations

import struct

import dnslib

from filterdns.resolver.cache import AnswerCache
from filterdns.resolver.upstream import UpstreamPool
from filterdns.wire.answer import encode_name
from filterdns.wire.query import RCODE_NOERROR, TYPE_CNAME, TYPE_OPT, Query, parse_query
from filterdns.wire.records import WireError, parse_layout, strip_opt

# Payload size asked of upstreams when the client did not use EDNS: answers are fitted to
# each client afterwards, so one large cached answer serves every kind of client.
UPSTREAM_PAYLOAD = 1232


class Forwarder:
    def __init__(self, cache: AnswerCache, upstream: UpstreamPool):
        self.cache = cache
        self.upstream = upstream
        # Names a cached answer's CNAME chain goes through, kept beside the cache so that
        # every hit can be checked against the asking group's policy without reparsing.
        self._cname_targets: dict[bytes, tuple[str, ...]] = {}

    def cached(self, query: Query) -> bytes | None:
        return self.cache.get(query.cache_key, query.raw[:2], query.raw[12 : query.question_end])

    def cname_targets(self, query: Query) -> tuple[str, ...]:
        return self._cname_targets.get(query.cache_key, ())

    @staticmethod
    def target_query(query: Query, target: str) -> Query:
        """A query for ``target`` with the same type, flags and EDNS as ``query`` (the client's
        options dropped), for resolving a safe-search target through cache and upstream."""
        question = encode_name(target) + query.raw[query.question_end - 4 : query.question_end]
        return parse_query(upstream_query(query)[:12] + question + _opt_record(query))

    async def resolve(self, query: Query) -> tuple[bytes, str]:
        """Ask upstream; returns (answer without OPT, label of the upstream that answered).
        Raises the upstream pool's errors (UpstreamUnavailable, UpstreamOverloaded)."""
        response, label = await self.upstream.resolve(upstream_query(query))
        try:
            layout = parse_layout(response)
            if layout.opt_start is not None:
                response = strip_opt(response, layout)
        except WireError:
            return response, label
        self.cache.put(query.cache_key, response)
        targets = cname_chain(response) if layout.rcode == RCODE_NOERROR and layout.answer_count else ()
        if targets:
            if len(self._cname_targets) >= max(1024, self.cache.max_entries):
                self._cname_targets.pop(next(iter(self._cname_targets)))
            self._cname_targets[query.cache_key] = targets
        return response, label


def upstream_query(query: Query) -> bytes:
    """The query as sent upstream: the client's header flags and exact question, and an OPT
    record carrying only the payload size and the DO bit (no client options)."""
    raw = query.raw
    return raw[:4] + b"\x00\x01\x00\x00\x00\x00\x00\x01" + raw[12 : query.question_end] + _opt_record(query)


def _opt_record(query: Query) -> bytes:
    payload = query.udp_size if query.has_opt else UPSTREAM_PAYLOAD
    return b"\x00" + struct.pack("!HHBBHH", TYPE_OPT, payload, 0, 0, 0x8000 if query.do_bit else 0, 0)


def cname_chain(response: bytes) -> tuple[str, ...]:
    """The CNAME targets in an answer section, lower-case dotted (for CNAME inspection: an
    allowed name that aliases into a blocked domain is blocked too)."""
    if TYPE_CNAME.to_bytes(2, "big") not in response:
        return ()
    try:
        record = dnslib.DNSRecord.parse(response)
    except dnslib.DNSError:
        return ()
    return tuple(str(rr.rdata.label).rstrip(".").lower() for rr in record.rr if rr.rtype == TYPE_CNAME)
