"""The category index: which categories list a name or one of its parent domains.

A name matches a category if the name itself or any parent domain is listed for it, unless a
more specific listed suffix carries an exception (adblock ``@@``) for that category: per
category, the most specific listed suffix decides.

Layout. A million listed domains must fit in tens of megabytes and must not be a million Python
objects (every full garbage collection would walk them and stall the resolver). So the index is
a handful of flat buffers:

* ``_blob``    – every listed name, ASCII, concatenated (bytes);
* ``_offsets`` – where name *i* starts in the blob (``array('I')``, one extra end offset);
* ``_hashes``  – CRC-32 of name *i*;
* ``_block`` / ``_allow`` – category masks of name *i* (typecode sized to the number of bits);
* ``_slots``   – an open-addressing hash table (linear probing, load ≤ 1/2) of entry numbers + 1.

About 38 MB per million names. A lookup hashes one suffix at a time, walks a short probe
sequence and confirms a hit by comparing the stored name, so there are no false positives.
CRC-32 (not Python's per-process ``hash``) keeps the index valid in any process: it pickles, so
it can be built in a worker process. marisa-trie was measured as the alternative: half the
memory, but building it and mapping its key ids to masks took over 2 s per million names
against about 1 s for this table, and its lookups were no faster (2–4 µs a name either way).
"""

from __future__ import annotations

import itertools
import operator
from array import array
from bisect import bisect_right
from collections import Counter, defaultdict
from typing import Iterable, Iterator
from zlib import crc32

MAX_CATEGORIES = 64
# Typecodes able to hold masks of up to N bits.
_MASK_TYPECODES = ((8, "B"), (16, "H"), (32, "I"), (64, "Q"))


class DomainIndex:
    """Immutable suffix index from domain names to category bitmasks. Build it with
    :meth:`build` or :class:`DomainIndexBuilder`."""

    __slots__ = ("_slots", "_probe_mask", "_hashes", "_blob", "_offsets", "_block", "_allow", "_min_dots")

    def __init__(self, names: list[str], block: array, allow: array | None) -> None:
        """Pack ``names`` (distinct, normalised) with their block and exception masks, entry by
        entry; use :meth:`build` or :class:`DomainIndexBuilder` rather than calling this."""
        blob = "".join(names)
        if not blob.isascii():
            raise ValueError("index names must be normalised ASCII domain names")
        self._blob = blob.encode("ascii")
        self._offsets = array("I", itertools.accumulate(map(len, names), initial=0))
        self._hashes = array("I", map(crc32, map(str.encode, names)))
        self._block = block
        self._allow = allow
        # Without single-label names the top-level domain can never match: skipping its probe
        # saves about a quarter of a lookup. An empty index skips everything.
        if not names:
            self._min_dots = 1 << 30
        else:
            # operator.contains: 2.5 times faster per name than the str.__contains__ slot wrapper.
            self._min_dots = 1 if all(map(operator.contains, names, itertools.repeat("."))) else 0
        self._slots, self._probe_mask = _hash_table(self._hashes)

    @classmethod
    def build(cls, entries: Iterable[tuple[str, int, bool]]) -> DomainIndex:
        """Index ``(normalised domain, category bit number, is_exception)`` entries; a listing
        for bit *i* sets mask bit ``1 << i``."""
        grouped: defaultdict[tuple[int, bool], list[str]] = defaultdict(list)
        for domain, bit, exception in entries:
            grouped[bit, exception].append(domain)
        builder = DomainIndexBuilder()
        for (bit, exception), domains in grouped.items():
            builder.add(domains, bit, exception)
        return builder.build()

    @classmethod
    def empty(cls) -> DomainIndex:
        return cls([], array("B"), None)

    def mask_counts(self) -> Counter[int]:
        """How many listed names carry each block mask (for overlap counts; ~60 ms per million)."""
        return Counter(self._block)

    def __len__(self) -> int:
        """Number of distinct listed domains (exception-only entries included)."""
        return len(self._hashes)

    def match(self, name: str) -> int:
        """Category mask for ``name`` (lowercase, dotted, no trailing dot); 0 if unlisted."""
        result = 0
        for _, mask in self._decisions(name.encode()):
            result |= mask
        return result

    def explain(self, name: str) -> list[tuple[str, int]]:
        """The listed suffixes of ``name`` that decide a blocked category, most specific first,
        each with the categories it decides. Their masks add up to :meth:`match`; suffixes whose
        listings are all overridden (by an exception or a more specific listing) are left out."""
        data = name.encode()
        return [(data[position:].decode(), mask) for position, mask in self._decisions(data)]

    def listed_below(self, name: str, mask: int, limit: int = 5) -> list[str]:
        """Up to ``limit`` listed names strictly below ``name`` (``x.name``) that block a
        category of ``mask``. For the console's "may a teacher lift this?" check, not for the
        query path: it scans the blob, about 0.1 s per million names for a common suffix."""
        needle = b"." + name.encode()
        blob, offsets, block, allow = self._blob, self._offsets, self._block, self._allow
        found: list[str] = []
        position = blob.find(needle)
        while position >= 0 and len(found) < limit:
            end = position + len(needle)
            entry = bisect_right(offsets, position) - 1
            # A hit counts only when it ends exactly where its entry ends (names are packed
            # with no separator, so a match may straddle two entries).
            if offsets[entry + 1] == end:
                blocks = block[entry] & ~(0 if allow is None else allow[entry])
                if blocks & mask:
                    found.append(blob[offsets[entry] : end].decode())
            position = blob.find(needle, position + 1)
        return found

    def _decisions(self, data: bytes) -> Iterator[tuple[int, int]]:
        """(start of suffix, categories it blocks) for each listed suffix of ``data`` that
        decides at least one category, from the longest suffix to the shortest."""
        # The query hot path: attributes in locals, the hash-table probe written out inline.
        slots, probe_mask, hashes = self._slots, self._probe_mask, self._hashes
        offsets, blob, block, allow = self._offsets, self._blob, self._block, self._allow
        dots = data.count(b".")
        position = 0
        decided = 0
        while dots >= self._min_dots:
            key = data[position:]
            digest = crc32(key)
            slot = digest & probe_mask
            while entry := slots[slot]:
                entry -= 1
                if hashes[entry] == digest and blob[offsets[entry] : offsets[entry + 1]] == key:
                    listed = block[entry]
                    allowed = 0 if allow is None else allow[entry]
                    blocks = listed & ~allowed & ~decided
                    decided |= listed | allowed
                    if blocks:
                        yield position, blocks
                    break
                slot = (slot + 1) & probe_mask
            position = data.find(b".", position) + 1
            dots -= 1


class DomainIndexBuilder:
    """Accumulates listings per category, then packs them into a :class:`DomainIndex`."""

    def __init__(self) -> None:
        self._block: dict[str, int] = {}
        self._allow: dict[str, int] = {}
        self._max_bit = -1

    def add(self, domains: Iterable[str], bit: int, exception: bool = False) -> None:
        """List normalised ``domains`` (duplicates allowed) for category bit number ``bit``,
        or as exceptions for it."""
        if not 0 <= bit < MAX_CATEGORIES:
            raise ValueError(f"category bit {bit} outside 0..{MAX_CATEGORIES - 1}")
        self._max_bit = max(self._max_bit, bit)
        value = 1 << bit
        target = self._allow if exception else self._block
        if not target:
            # The first list: dict.fromkeys does it in C, and its dict is adopted, not copied.
            # Merging later lists with a plain loop was measured twice as fast as C-level set
            # intersections plus dict updates.
            if exception:
                self._allow = dict.fromkeys(domains, value)
            else:
                self._block = dict.fromkeys(domains, value)
            return
        get = target.get
        for domain in domains:
            target[domain] = get(domain, 0) | value

    def build(self) -> DomainIndex:
        """Pack everything added into an index. Empties the builder: its dicts are the largest
        short-lived memory of a reload, so they are released before the index is packed."""
        block, allow = self._block, self._allow
        self._block, self._allow = {}, {}
        names = list(block)
        if allow:
            names.extend(allow.keys() - block.keys())
        typecode = next(code for bits, code in _MASK_TYPECODES if self._max_bit < bits)
        block_masks = array(typecode, block.values())  # same order as the start of ``names``
        block_masks.extend(itertools.repeat(0, len(names) - len(block_masks)))
        allow_masks = array(typecode, map(allow.get, names, itertools.repeat(0))) if allow else None
        del block, allow
        return DomainIndex(names, block_masks, allow_masks)


def _hash_table(hashes: array) -> tuple[array, int]:
    """Open-addressing table of entry numbers + 1 (0 = empty) with at least twice as many
    slots as entries, and the mask that reduces a hash to a slot."""
    size = 1 << max(3, (2 * len(hashes)).bit_length())
    probe_mask = size - 1
    slots = array("I", [0]) * size
    for entry, digest in enumerate(hashes, 1):
        slot = digest & probe_mask
        while slots[slot]:
            slot = (slot + 1) & probe_mask
        slots[slot] = entry
    return slots, probe_mask
