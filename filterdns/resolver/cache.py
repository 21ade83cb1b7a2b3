"""The answer cache: upstream responses kept as bytes and replayed with fresh ID and TTLs.

A hit must cost a few microseconds, so nothing is parsed on the way out. ``put`` parses a
response once, decides its lifetime, and stores it split into three pieces: the header
after the ID, the question, and the rest (the "tail", which holds every TTL field). ``get``
joins the client's ID, the stored header, the client's own question bytes (keeping its
0x20 mixed case; compressed names in the answers point at it and follow along) and a tail
whose TTLs were counted down. The counted-down tail is memoised per elapsed second, so
only the first hit in each second patches bytes.

Lifetimes (``CacheConfig``):

- NOERROR with answers: the smallest TTL, clamped to [min_ttl, max_ttl].
- NXDOMAIN, and NOERROR without answers (NODATA): RFC 2308 min(SOA TTL, SOA MINIMUM),
  also bounded by the other records' TTLs, clamped to [min_ttl, negative_max_ttl]. Without
  an SOA nothing is cached (RFC 2308 5: such answers SHOULD NOT be cached).
- Anything else (SERVFAIL, REFUSED, FORMERR, ...), truncated (TC) responses, responses
  without exactly one question, and responses whose relevant upstream TTL is 0 (the
  authority asked for no caching, which min_ttl does not override): not cached.

Each stored TTL field is clamped the same way (raised to min_ttl, lowered to max_ttl; in a
negative answer lowered to the entry's lifetime, so the SOA shows the negative TTL as RFC
2308 3 asks). Every stored TTL is therefore at least the entry's lifetime, so a served TTL
never drops below 1 before the entry expires.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from filterdns.config.model import CacheConfig
from filterdns.wire.rcodes import RCODE_NOERROR, RCODE_NXDOMAIN
from filterdns.wire.records import (
    FLAG_TC,
    HEADER_SIZE,
    ResponseLayout,
    parse_layout,
    patch_ttls,
    read_ttl,
)


# One cached response, pre-split so a hit is a single ``bytes.join``: a plain tuple of
# (flags and counts after the ID, question length, tail as stored, TTL offsets in the tail,
# stored TTLs, stored at, expires at). A plain tuple of bytes and numbers, not an object:
# the garbage collector stops tracking such tuples, so a full collection no longer walks
# every cached answer (measured: 300k slotted entries cost 60 ms per full collection, which
# showed as 1-60 ms spikes in answer latency; tuples cost nothing).
_Entry = tuple[bytes, int, bytes, tuple[int, ...], tuple[int, ...], float, float]
_HEAD, _QUESTION_LENGTH, _TAIL, _TTL_OFFSETS, _TTLS, _STORED_AT, _EXPIRES_AT = range(7)


def _make_entry(response: bytes, layout: ResponseLayout, ttls: tuple[int, ...], now: float, lifetime: int) -> _Entry:
    question_end = layout.question_end
    ttl_offsets = tuple(offset - question_end for offset in layout.ttl_offsets)
    return (
        response[2:HEADER_SIZE],  # flags and counts; the ID comes from the query
        question_end - HEADER_SIZE,
        patch_ttls(response[question_end:], ttl_offsets, ttls),
        ttl_offsets,
        ttls,  # TTLs as stored (clamped), counted down from on each hit
        now,
        now + lifetime,
    )


class AnswerCache:
    """LRU cache of upstream responses (without OPT), keyed by opaque question keys.

    ``hits``, ``misses``, ``evictions`` (LRU capacity evictions only) and ``stale_hits``
    are plain cumulative ints for the metrics module; ``clear`` does not reset them.
    With ``stale_retention`` > 0, expired entries are kept that many seconds for
    ``get_stale`` (RFC 8767); they still count towards ``max_entries`` and ``len``.
    """

    def __init__(
        self,
        config: CacheConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        stale_retention: float = 0.0,
    ) -> None:
        self._config = config
        self._clock = clock
        self._stale_retention = stale_retention
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # The tail of each entry counted down to a whole second, so only the first hit in
        # each second patches bytes: key -> (seconds since stored, tail).
        self._counted_down: dict[bytes, tuple[int, bytes]] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.stale_hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def max_entries(self) -> int:
        """The configured capacity, for structures that should be sized like the cache."""
        return self._config.max_entries

    def clear(self) -> None:
        """Drop every entry (e.g. after the upstream configuration changed)."""
        self._entries.clear()
        self._counted_down.clear()

    def put(self, key: bytes, response: bytes, layout: ResponseLayout | None = None) -> None:
        """Store ``response`` under ``key`` if it is cacheable (see the module docstring).

        ``response`` must not carry an OPT record; its ID does not matter. ``layout`` is its
        layout when the caller has it already. Raises ``WireError`` if it is malformed.
        """
        if self.max_entries <= 0:
            return
        if layout is None:
            layout = parse_layout(response)
        lifetime, ttl_cap = self._lifetime(response, layout)
        if lifetime <= 0:
            return
        floor = self._config.min_ttl
        ttls = tuple(min(max(read_ttl(response, offset), floor), ttl_cap) for offset in layout.ttl_offsets)
        entries = self._entries
        entries[key] = _make_entry(response, layout, ttls, self._clock(), lifetime)
        entries.move_to_end(key)
        self._counted_down.pop(key, None)
        if len(entries) > self.max_entries:
            evicted, _ = entries.popitem(last=False)
            self._counted_down.pop(evicted, None)
            self.evictions += 1

    def _lifetime(self, response: bytes, layout: ResponseLayout) -> tuple[int, int]:
        """(seconds to keep the response, cap for each stored TTL); a lifetime of 0 means
        not cacheable."""
        config = self._config
        if response[2] & (FLAG_TC >> 8) or response[4:6] != b"\x00\x01":
            return 0, 0
        if layout.rcode == RCODE_NOERROR and layout.answer_count:
            if layout.min_ttl == 0:
                return 0, 0
            lifetime = min(max(layout.min_ttl, config.min_ttl), config.max_ttl)
            return lifetime, config.max_ttl
        if layout.rcode in (RCODE_NOERROR, RCODE_NXDOMAIN) and layout.soa_negative_ttl is not None:
            negative = min(layout.soa_negative_ttl, layout.min_ttl)
            if negative == 0:
                return 0, 0
            lifetime = min(max(negative, config.min_ttl), config.negative_max_ttl)
            return lifetime, lifetime
        return 0, 0

    def get(self, key: bytes, query_id: bytes, question: bytes) -> bytes | None:
        """The cached response for ``key`` with the client's 2-byte ``query_id`` and exact
        ``question`` bytes (same length as stored) and TTLs counted down; None on a miss.

        An expired entry is a miss; it is dropped unless ``stale_retention`` keeps it.
        """
        entry = self._entries.get(key)
        if entry is not None:
            now = self._clock()
            if now < entry[_EXPIRES_AT]:
                self.hits += 1
                return self._serve(key, entry, query_id, question, self._tail_at(key, entry, now))
            if now >= entry[_EXPIRES_AT] + self._stale_retention:
                self._drop(key)
        self.misses += 1
        return None

    def _tail_at(self, key: bytes, entry: _Entry, now: float) -> bytes:
        """The entry's tail with every TTL lowered by the whole seconds since it was stored."""
        elapsed = int(now - entry[_STORED_AT])
        if not elapsed:
            return entry[_TAIL]
        memo = self._counted_down.get(key)
        if memo is not None and memo[0] == elapsed:
            return memo[1]
        # No clamp at 0 needed: every stored TTL is >= the lifetime > elapsed.
        tail = patch_ttls(entry[_TAIL], entry[_TTL_OFFSETS], [ttl - elapsed for ttl in entry[_TTLS]])
        self._counted_down[key] = (elapsed, tail)
        return tail

    def _drop(self, key: bytes) -> None:
        del self._entries[key]
        self._counted_down.pop(key, None)

    def has_stale(self, key: bytes, max_stale: float) -> bool:
        """Whether ``get_stale`` would serve ``key`` now: an entry expired at most
        ``max_stale`` seconds ago and still retained. Cheap: nothing is assembled."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        age = self._clock() - entry[_EXPIRES_AT]
        return 0 <= age <= max_stale and age < self._stale_retention

    def get_stale(
        self, key: bytes, query_id: bytes, question: bytes, max_stale: float, stale_ttl: int = 30
    ) -> bytes | None:
        """For RFC 8767 serve-stale when upstream failed: the entry for ``key`` if it expired
        at most ``max_stale`` seconds ago, with every TTL set to ``stale_ttl``.

        An entry that is (again) fresh is served as ``get`` would serve it. Only stale
        answers are counted (``stale_hits``); the preceding ``get`` counted the miss.
        """
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        expires_at = entry[_EXPIRES_AT]
        if now < expires_at:
            tail = self._tail_at(key, entry, now)
        elif now - expires_at <= max_stale and now < expires_at + self._stale_retention:
            tail = patch_ttls(entry[_TAIL], entry[_TTL_OFFSETS], [stale_ttl] * len(entry[_TTL_OFFSETS]))
            self.stale_hits += 1
        else:
            if now >= expires_at + self._stale_retention:
                self._drop(key)
            return None
        return self._serve(key, entry, query_id, question, tail)

    def _serve(self, key: bytes, entry: _Entry, query_id: bytes, question: bytes, tail: bytes) -> bytes:
        """Mark ``key`` most recently used and assemble the client's response."""
        if len(question) != entry[_QUESTION_LENGTH]:
            raise ValueError("question length differs from the cached one")
        self._entries.move_to_end(key)
        return b"".join((query_id, entry[_HEAD], question, tail))
