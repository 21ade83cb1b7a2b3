"""Parse an incoming DNS query straight from bytes: header, the one question, and EDNS.

This runs for every packet, so it builds no dnslib objects: it reads the fixed header,
walks the question's labels, skips any answer/authority records and reads the OPT record
(payload size, DO bit, version, Client Subnet, dnsmasq's MAC options). Anything a resolver
must refuse is reported as ``QueryError`` with the rcode to answer and whether an answer
is possible at all (a packet too short to hold an ID gets none).
"""

from __future__ import annotations

import base64
import binascii
import socket

from filterdns.wire.rcodes import RCODE_FORMERR, RCODE_NOTIMP

# Header flag bits (in the 16-bit flags word).
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_HTTPS = 65
TYPE_IXFR = 251
TYPE_AXFR = 252
TYPE_ANY = 255
CLASS_IN = 1

OPTION_ECS = 8
OPTION_EDE = 15
OPTION_MAC_RAW = 65001  # dnsmasq --add-mac: six raw bytes
OPTION_MAC_TEXT = 65073  # dnsmasq --add-mac=text|base64

MIN_UDP_PAYLOAD = 512


class QueryError(Exception):
    """The packet cannot be served as a normal query.

    ``rcode`` is what to answer; ``None`` means drop silently (no ID to answer to, or a
    response packet that must never be answered). ``question_end`` says how much of the
    packet may be echoed back as the question section (0: none)."""

    def __init__(self, message: str, rcode: int | None, question_end: int = 0):
        super().__init__(message)
        self.rcode = rcode
        self.question_end = question_end


class ClientSubnet:
    """An EDNS Client Subnet option (RFC 7871) as the forwarder sent it."""

    __slots__ = ("family", "source_prefix", "address", "packed")

    def __init__(self, family: int, source_prefix: int, address: str, packed: bytes):
        self.family = family
        self.source_prefix = source_prefix
        self.address = address
        self.packed = packed  # the address bytes as sent: ceil(prefix / 8) of them

    def is_single_host(self) -> bool:
        """A /32 or /128 names one client; a shorter prefix names a network, not a pupil."""
        return self.source_prefix == (32 if self.family == 1 else 128)


class Query:
    """What the query path needs to know about one query; see ``parse_query``."""

    __slots__ = (
        "raw",
        "flags",
        "name",
        "qtype",
        "qclass",
        "question_end",
        "cache_key",
        "has_opt",
        "udp_size",
        "do_bit",
        "edns_version",
        "client_subnet",
        "mac",
    )

    raw: bytes
    flags: int
    name: str
    qtype: int
    qclass: int
    question_end: int
    cache_key: bytes
    has_opt: bool
    udp_size: int
    do_bit: bool
    edns_version: int
    client_subnet: ClientSubnet | None
    mac: str | None

    @property
    def id_bytes(self) -> bytes:
        return self.raw[:2]

    @property
    def question(self) -> bytes:
        """The question section exactly as the client sent it (mixed case kept)."""
        return self.raw[12 : self.question_end]


def parse_query(raw: bytes) -> Query:
    """Parse a query packet; raise ``QueryError`` for anything that is not a servable query."""
    size = len(raw)
    if size < 12:
        raise QueryError("packet shorter than a DNS header", None)
    flags = (raw[2] << 8) | raw[3]
    if flags & QR:
        raise QueryError("packet is a response", None)
    qdcount = (raw[4] << 8) | raw[5]
    if (flags >> 11) & 0xF != 0:
        # Only opcode QUERY is served; echo what we can of the question.
        raise QueryError("opcode not implemented", RCODE_NOTIMP)
    if qdcount != 1:
        raise QueryError(f"QDCOUNT is {qdcount}, not 1", RCODE_FORMERR)

    labels: list[bytes] = []
    pos = 12
    total = 0
    while True:
        if pos >= size:
            raise QueryError("question name runs past the packet", RCODE_FORMERR)
        length = raw[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            # Compression pointers in a question are legal but never sent by real clients;
            # refusing them removes a whole class of pointer-loop attacks.
            raise QueryError("compressed or invalid label in question", RCODE_FORMERR)
        total += length + 1
        if total > 254:
            raise QueryError("question name longer than 255 bytes", RCODE_FORMERR)
        labels.append(raw[pos + 1 : pos + 1 + length])
        pos += length + 1
    name_end = pos
    if pos + 4 > size:
        raise QueryError("question truncated", RCODE_FORMERR)
    qtype = (raw[pos] << 8) | raw[pos + 1]
    qclass = (raw[pos + 2] << 8) | raw[pos + 3]
    question_end = pos + 4

    query = Query()
    query.raw = raw
    query.flags = flags
    query.name = _text_name(labels)
    query.qtype = qtype
    query.qclass = qclass
    query.question_end = question_end
    query.has_opt = False
    query.udp_size = MIN_UDP_PAYLOAD
    query.do_bit = False
    query.edns_version = 0
    query.client_subnet = None
    query.mac = None

    if raw[6] | raw[7] | raw[8] | raw[9] | raw[10] | raw[11]:
        try:
            _read_records(raw, query, question_end)
        except IndexError:
            raise QueryError("record runs past the packet", RCODE_FORMERR, question_end) from None

    # The cache key: the case-folded name, type, class, and the bits that change the answer.
    query.cache_key = (
        raw[12:name_end].lower()
        + raw[name_end:question_end]
        + (b"\x01" if query.do_bit else b"\x00")
        + (b"\x01" if flags & CD else b"\x00")
    )
    return query


# Bytes that stand for themselves in a text name: printable ASCII except the backslash (the
# escape character). Dots are checked separately: only separators may be dots.
_PLAIN_NAME_BYTES = bytes(c for c in range(33, 127) if c != 92)


def _text_name(labels: list[bytes]) -> str:
    """Lower-case dotted name, no trailing dot. Other bytes, backslashes and dots inside a label
    are escaped as ``\\DDD``, so two different wire names never share a text name."""
    joined = b".".join(labels).lower()
    if not joined.translate(None, _PLAIN_NAME_BYTES) and joined.count(b".") == len(labels) - 1:
        return joined.decode("ascii")
    return ".".join(
        "".join(chr(c) if 32 < c < 127 and c not in (46, 92) else f"\\{c:03d}" for c in label.lower())
        for label in labels
    )


def _skip_name(raw: bytes, pos: int) -> int:
    """Offset after a (possibly compressed) name; the name itself is not followed."""
    while True:
        length = raw[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(raw):
                raise IndexError("compression pointer cut short")
            return pos + 2
        if length > 63:
            raise QueryError("invalid label type", RCODE_FORMERR)
        pos += length + 1


def _read_records(raw: bytes, query: Query, pos: int) -> None:
    """Skip answer/authority records and read the additional section's OPT record."""
    ancount = (raw[6] << 8) | raw[7]
    nscount = (raw[8] << 8) | raw[9]
    arcount = (raw[10] << 8) | raw[11]
    question_end = query.question_end
    for index in range(ancount + nscount + arcount):
        name_start = pos
        pos = _skip_name(raw, pos)
        rtype = (raw[pos] << 8) | raw[pos + 1]
        rdlength = (raw[pos + 8] << 8) | raw[pos + 9]
        rdata_start = pos + 10
        end = rdata_start + rdlength
        if end > len(raw):
            raise QueryError("record data runs past the packet", RCODE_FORMERR, question_end)
        if rtype == TYPE_OPT:
            if index < ancount + nscount or raw[name_start] != 0:
                raise QueryError("OPT record outside the additional section or not at the root", RCODE_FORMERR, question_end)
            if query.has_opt:
                raise QueryError("more than one OPT record", RCODE_FORMERR, question_end)
            query.has_opt = True
            query.udp_size = max(MIN_UDP_PAYLOAD, (raw[pos + 2] << 8) | raw[pos + 3])
            query.edns_version = raw[pos + 5]
            query.do_bit = bool(raw[pos + 6] & 0x80)
            _read_options(raw[rdata_start:end], query)
        pos = end


def _read_options(data: bytes, query: Query) -> None:
    """Pick out the options we use; unknown options are ignored (RFC 6891 6.1.2)."""
    pos = 0
    while pos + 4 <= len(data):
        code = (data[pos] << 8) | data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        value = data[pos + 4 : pos + 4 + length]
        if len(value) != length:
            raise QueryError("EDNS option runs past the OPT record", RCODE_FORMERR, query.question_end)
        if code == OPTION_ECS:
            query.client_subnet = _parse_client_subnet(value, query.question_end)
        elif code == OPTION_MAC_RAW and length == 6:
            query.mac = ":".join(f"{b:02x}" for b in value)
        elif code == OPTION_MAC_TEXT:
            query.mac = parse_mac_text(value)
        pos += 4 + length


def _parse_client_subnet(value: bytes, question_end: int) -> ClientSubnet:
    if len(value) < 4:
        raise QueryError("Client Subnet option too short", RCODE_FORMERR, question_end)
    family = (value[0] << 8) | value[1]
    source_prefix = value[2]
    address = value[4:]
    width = {1: 4, 2: 16}.get(family)
    if width is None or source_prefix > width * 8 or len(address) != (source_prefix + 7) // 8:
        # RFC 7871 7.1.1: malformed ECS is FORMERR.
        raise QueryError("malformed Client Subnet option", RCODE_FORMERR, question_end)
    padded = address + bytes(width - len(address))
    text = socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, padded)
    return ClientSubnet(family, source_prefix, text, address)


def parse_mac_text(value: bytes) -> str | None:
    """dnsmasq's option 65073 carries the MAC as text (``aa:bb:..``) or base64 of 6 bytes."""
    text = value.decode("ascii", "replace").strip()
    digits = text.replace(":", "").replace("-", "")
    if len(digits) == 12 and all(c in "0123456789abcdefABCDEF" for c in digits):
        try:
            return ":".join(f"{b:02x}" for b in bytes.fromhex(digits))
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return ":".join(f"{b:02x}" for b in raw) if len(raw) == 6 else None
