"""Walking and editing DNS responses in wire format, without building message objects.

Every upstream answer passes through here on its way into the cache, and every cache hit
has its TTLs rewritten; building dnslib objects for that would cost tens of microseconds
per message. These helpers find only the byte offsets the resolver needs (the end of the
question, each TTL field, the OPT record) and splice bytes.

Input comes from the network, so every name goes through ``skip_name``, which follows
compression pointers only backwards and a bounded number of times. A malformed message
raises ``WireError`` (never hangs, never raises IndexError or struct.error).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

HEADER_SIZE = 12
TYPE_SOA = 6
TYPE_OPT = 41
FLAG_TC = 0x0200
FLAG_DO = 0x8000

_MAX_NAME_LENGTH = 255  # RFC 1035 3.1, wire length including the root byte
_MAX_POINTERS = 127  # a 255-byte name has at most 127 labels; more jumps means abuse
_MAX_TTL = 0x7FFFFFFF  # RFC 2181 8: a TTL with the top bit set is read as 0

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
_COUNTS = struct.Struct("!HHHHH")  # flags and the four counts, written after the id
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
# root name, type OPT, class = UDP payload size, extended rcode, version, flags, rdlength
_OPT_FIXED = struct.Struct("!BHHBBHH")

_ANSWER, _AUTHORITY, _ADDITIONAL = range(3)


class WireError(ValueError):
    """The bytes are not a well-formed DNS message."""


@dataclass(slots=True)
class ResponseLayout:
    """Where things are in one response, as found by ``parse_layout``.

    ``rcode`` includes the extended bits from the OPT record when one is present.
    ``min_ttl`` is the smallest TTL over answer, authority and additional records (the OPT
    pseudo-RR excluded), 0 when there are none. ``soa_negative_ttl`` is the RFC 2308 negative
    TTL, min(SOA TTL, SOA MINIMUM), of the authority section's SOA (the smallest if there
    are several), or None without one; it is reported whatever the rcode, and the caller
    decides whether the response is negative.
    """

    rcode: int
    question_end: int
    ttl_offsets: tuple[int, ...]
    min_ttl: int
    opt_start: int | None
    opt_end: int | None
    soa_negative_ttl: int | None
    answer_count: int


def skip_name(message: bytes, offset: int) -> int:
    """Return the offset just past the name that starts at ``offset``.

    The whole name is walked, following compression pointers, to prove it is well formed.
    A pointer must target the header-free part of the message before the start of the
    label run it ends; since run starts then strictly decrease, loops are impossible and
    forward references are refused. The name may not exceed 255 bytes.
    """
    size = len(message)
    end = -1  # where the name ends in place; set at the first pointer
    pos = run_start = offset
    name_length = 1  # the root byte
    pointers = 0
    while pos < size:
        length = message[pos]
        if length == 0:
            return pos + 1 if end < 0 else end
        if length < 0x40:
            name_length += length + 1
            if name_length > _MAX_NAME_LENGTH:
                raise WireError(f"name at offset {offset} is longer than 255 bytes")
            pos += length + 1
        elif length >= 0xC0:
            if pos + 1 >= size:
                break
            target = ((length & 0x3F) << 8) | message[pos + 1]
            if not HEADER_SIZE <= target < run_start:
                raise WireError(f"compression pointer at offset {pos} to {target} does not point backwards")
            pointers += 1
            if pointers > _MAX_POINTERS:
                raise WireError(f"name at offset {offset} has too many compression pointers")
            if end < 0:
                end = pos + 2
            pos = run_start = target
        else:
            raise WireError(f"unsupported label type 0x{length & 0xC0:02x} at offset {pos}")
    raise WireError(f"name at offset {offset} runs past the end of the message")


def read_ttl(message: bytes, offset: int) -> int:
    """The TTL stored at ``offset``, with RFC 2181's rule that values above 2**31-1 mean 0."""
    ttl = _U32.unpack_from(message, offset)[0]
    return 0 if ttl > _MAX_TTL else ttl


def parse_layout(message: bytes) -> ResponseLayout:
    """Find the question's end, every TTL field, the OPT record and the negative TTL.

    Bytes after the last record are ignored, as most resolvers do.
    """
    size = len(message)
    if size < HEADER_SIZE:
        raise WireError("message is shorter than a DNS header")
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(message)
    pos = HEADER_SIZE
    for _ in range(qdcount):
        pos = skip_name(message, pos) + 4  # qtype, qclass
        if pos > size:
            raise WireError("question runs past the end of the message")
    question_end = pos

    rcode = flags & 0x000F
    ttl_offsets: list[int] = []
    min_ttl: int | None = None
    soa_negative_ttl: int | None = None
    opt_start = opt_end = None
    for section, count in enumerate((ancount, nscount, arcount)):
        for _ in range(count):
            start = pos
            pos = skip_name(message, pos)
            if pos + _RR_FIXED.size > size:
                raise WireError(f"record at offset {start} runs past the end of the message")
            rtype, _, ttl, rdlength = _RR_FIXED.unpack_from(message, pos)
            rdata = pos + _RR_FIXED.size
            pos = rdata + rdlength
            if pos > size:
                raise WireError(f"record data at offset {rdata} runs past the end of the message")
            if rtype == TYPE_OPT:
                # RFC 6891 6.1.1: at most one OPT, and only in the additional section.
                if section != _ADDITIONAL or opt_start is not None:
                    raise WireError(f"misplaced or repeated OPT record at offset {start}")
                opt_start, opt_end = start, pos
                rcode |= (ttl >> 24) << 4  # the OPT "TTL" carries the upper rcode bits
                continue
            if ttl > _MAX_TTL:  # as in read_ttl, inlined: this loop runs for every upstream answer
                ttl = 0
            ttl_offsets.append(rdata - 6)  # ttl and rdlength precede the data
            if min_ttl is None or ttl < min_ttl:
                min_ttl = ttl
            if rtype == TYPE_SOA and section == _AUTHORITY:
                negative = min(ttl, _soa_minimum(message, rdata, pos))
                soa_negative_ttl = negative if soa_negative_ttl is None else min(soa_negative_ttl, negative)
    return ResponseLayout(
        rcode=rcode,
        question_end=question_end,
        ttl_offsets=tuple(ttl_offsets),
        min_ttl=0 if min_ttl is None else min_ttl,
        opt_start=opt_start,
        opt_end=opt_end,
        soa_negative_ttl=soa_negative_ttl,
        answer_count=ancount,
    )


def _soa_minimum(message: bytes, rdata: int, rdata_end: int) -> int:
    """The MINIMUM field of the SOA whose data spans ``rdata``..``rdata_end``."""
    pos = skip_name(message, skip_name(message, rdata))  # MNAME, RNAME
    if pos + 20 != rdata_end:  # serial, refresh, retry, expire, minimum
        raise WireError(f"SOA data at offset {rdata} has the wrong length")
    return _U32.unpack_from(message, pos + 16)[0]


def _with_arcount(message: bytes, arcount: int) -> bytes:
    """The first 12 bytes of ``message`` with ARCOUNT replaced."""
    return message[:10] + _U16.pack(arcount)


def strip_opt(message: bytes, layout: ResponseLayout) -> bytes:
    """``message`` without its OPT record (ARCOUNT decremented); unchanged if it has none.

    The resolver strips the upstream's OPT before caching and answers each client with its
    own (or none, if the client sent none: RFC 6891 7 forbids an unsolicited OPT).
    """
    return without_opt(message, layout)[0]


def without_opt(message: bytes, layout: ResponseLayout) -> tuple[bytes, ResponseLayout]:
    """``strip_opt`` plus the layout of the result, so the caller need not parse it again."""
    start, end = layout.opt_start, layout.opt_end
    if start is None or end is None:
        return message, layout
    arcount = _U16.unpack_from(message, 10)[0]
    stripped = b"".join((_with_arcount(message, arcount - 1), message[HEADER_SIZE:start], message[end:]))
    removed = end - start
    return stripped, replace(
        layout,
        ttl_offsets=tuple(offset - removed if offset > start else offset for offset in layout.ttl_offsets),
        opt_start=None,
        opt_end=None,
    )


def append_opt(
    message: bytes, payload_size: int, do_bit: bool, extended_rcode: int = 0, options: bytes = b""
) -> bytes:
    """``message`` with an OPT record (EDNS version 0) appended and ARCOUNT incremented.

    ``extended_rcode`` is the OPT field itself (the upper 8 bits of a 12-bit rcode) and
    ``options`` the already encoded option list. The message must not already carry an OPT.
    """
    if len(message) < HEADER_SIZE:
        raise WireError("message is shorter than a DNS header")
    arcount = _U16.unpack_from(message, 10)[0]
    if arcount == 0xFFFF:
        raise WireError("additional section is full")
    flags = FLAG_DO if do_bit else 0
    opt = _OPT_FIXED.pack(0, TYPE_OPT, payload_size, extended_rcode, 0, flags, len(options))
    return b"".join((_with_arcount(message, arcount + 1), message[HEADER_SIZE:], opt, options))


def fit_to_size(message: bytes, limit: int) -> bytes:
    """``message`` if it fits in ``limit`` bytes, else a truncated response (TC=1).

    The truncated form keeps the header (with ANCOUNT = NSCOUNT = 0), the question and the
    OPT record if there was one, so the client sees TC and retries over TCP (RFC 2181 9,
    RFC 6891 7). With a limit of at least 512 and an option-less OPT it always fits.
    """
    if len(message) <= limit:
        return message
    layout = parse_layout(message)
    opt = b"" if layout.opt_start is None else message[layout.opt_start : layout.opt_end]
    _, flags, qdcount, *_ = _HEADER.unpack_from(message)
    header = message[:2] + _COUNTS.pack(flags | FLAG_TC, qdcount, 0, 0, 1 if opt else 0)
    return b"".join((header, message[HEADER_SIZE : layout.question_end], opt))


def patch_ttls(message: bytes, offsets: Sequence[int], ttls: Sequence[int]) -> bytes:
    """A copy of ``message`` with ``ttls[i]`` written at ``offsets[i]`` (pairs, in order).

    The cache calls this at most once per entry per elapsed second and keeps the result,
    so a hit only joins ready-made bytes.
    """
    buffer = bytearray(message)
    for offset, ttl in zip(offsets, ttls, strict=True):
        _U32.pack_into(buffer, offset, ttl)
    return bytes(buffer)
