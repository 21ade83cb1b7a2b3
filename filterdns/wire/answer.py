"""Build the answers filterdns makes itself: errors, blocks, and safe-search rewrites.

Errors and blocks are assembled from bytes (header + the client's own question + at most one
record whose owner is a compression pointer to the question), because they are on the hot
path when a class hammers a blocked site. The safe-search rewrite needs the target's records
out of an upstream answer, so it uses dnslib, and its result is cached by the caller.
"""

from __future__ import annotations

import ipaddress
import struct

import dnslib

from filterdns.wire.query import (
    CLASS_IN,
    OPTION_ECS,
    OPTION_EDE,
    QR,
    RA,
    RD,
    TC,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_SOA,
    ClientSubnet,
    Query,
)
from filterdns.wire.rcodes import RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED
from filterdns.wire.records import append_opt

# The UDP payload size we advertise (the DNS Flag Day 2020 value).
SERVER_UDP_PAYLOAD = 1232

# RFC 8914 Extended DNS Error info-codes.
EDE_BLOCKED = 15  # blocked by the operator's policy (allow/deny lists, bypass protection)
EDE_FILTERED = 17  # filtered at the client's request (the school's category policy)
EDE_NETWORK_ERROR = 23

_POINTER_TO_QUESTION = b"\xc0\x0c"
TYPE_HINFO = 13

# Block responses carry an SOA so that forwarders may cache NXDOMAIN/NODATA for the block TTL
# (RFC 2308) instead of asking again for every pupil's retry.
_SOA_RDATA_TAIL = (
    b"\x09filterdns\x07invalid\x00"  # MNAME
    b"\x05admin\x09filterdns\x07invalid\x00"  # RNAME
)


def response_header(raw: bytes, rcode: int, qdcount: int, ancount: int = 0, nscount: int = 0) -> bytes:
    """A response header for the query in ``raw``: same ID, opcode, RD and CD; QR and RA set.
    AA is never set (we are not authoritative) and the Z bit is not echoed."""
    flags = QR | (((raw[2] << 8) | raw[3]) & (0x7800 | RD | 0x0010)) | RA | (rcode & 0xF)
    return raw[:2] + struct.pack("!HHHHH", flags, qdcount, ancount, nscount, 0)


def edns_options(ede_code: int | None = None, ede_text: str = "", client_subnet: ClientSubnet | None = None) -> bytes:
    """Options for our OPT record: an Extended DNS Error and the Client Subnet echo (RFC 7871
    7.2.1: scope = source prefix, so a caching forwarder keeps the answer per client)."""
    options = b""
    if client_subnet is not None:
        options += client_subnet_option(client_subnet)
    if ede_code is not None:
        text = ede_text.encode("utf-8")[:400]
        options += struct.pack("!HHH", OPTION_EDE, 2 + len(text), ede_code) + text
    return options


def client_subnet_option(subnet: ClientSubnet) -> bytes:
    prefix = subnet.source_prefix
    packed = subnet.packed
    return struct.pack("!HHHBB", OPTION_ECS, 4 + len(packed), subnet.family, prefix, prefix) + packed


def finish_for_client(message: bytes, query: Query, options: bytes = b"", extended_rcode: int = 0) -> bytes:
    """Add our OPT record if (and only if) the client sent one (RFC 6891 7)."""
    if not query.has_opt:
        return message
    return append_opt(message, SERVER_UDP_PAYLOAD, query.do_bit, extended_rcode, options)


def error_response(raw: bytes, rcode: int, question_end: int = 0, query: Query | None = None, options: bytes = b"") -> bytes:
    """FORMERR/SERVFAIL/REFUSED/NOTIMP/BADVERS for a query we could read at least an ID from.
    The question is echoed only when it was parsed (``question_end`` > 12)."""
    extended = rcode >> 4
    question = raw[12:question_end] if question_end > 12 else b""
    message = response_header(raw, rcode & 0xF, 1 if question else 0) + question
    if query is not None:
        return finish_for_client(message, query, options, extended)
    return message


def block_response(
    query: Query,
    mode: str,
    ttl: int,
    *,
    page_ipv4: str | None = None,
    page_ipv6: str | None = None,
    rcode: int | None = None,
    options: bytes = b"",
) -> bytes:
    """The answer to a blocked query in the group's block mode.

    ``null_ip`` answers A with 0.0.0.0 and AAAA with ::; ``blockpage`` answers with the block
    page's address; other types get NODATA in both, so apps fail fast instead of retrying.
    ``nxdomain`` and ``refused`` answer with that rcode. ``rcode`` forces an rcode (bypass
    protection's NXDOMAIN, or NODATA as rcode 0 with no answer)."""
    if rcode is None:
        rcode = {"nxdomain": RCODE_NXDOMAIN, "refused": RCODE_REFUSED}.get(mode, RCODE_NOERROR)
        address = _block_address(query.qtype, mode, page_ipv4, page_ipv6) if query.qclass == CLASS_IN else None
    else:
        address = None
    raw = query.raw
    question = query.question
    if address is not None:
        record = _POINTER_TO_QUESTION + struct.pack("!HHIH", query.qtype, CLASS_IN, ttl, len(address)) + address
        message = response_header(raw, RCODE_NOERROR, 1, ancount=1) + question + record
    elif rcode == RCODE_REFUSED:
        message = response_header(raw, rcode, 1) + question
    else:
        message = response_header(raw, rcode, 1, nscount=1) + question + _soa_record(ttl)
    return finish_for_client(message, query, options)


def minimal_any_response(query: Query, ttl: int = 3600) -> bytes:
    """RFC 8482: answer ANY with one synthesised HINFO record ("RFC8482", "") instead of
    everything we know, which is what makes ANY useful for amplification attacks."""
    rdata = b"\x07RFC8482\x00"
    record = _POINTER_TO_QUESTION + struct.pack("!HHIH", TYPE_HINFO, CLASS_IN, ttl, len(rdata)) + rdata
    message = response_header(query.raw, RCODE_NOERROR, 1, ancount=1) + query.question + record
    return finish_for_client(message, query)


def truncated_response(query: Query) -> bytes:
    """An empty answer with TC set: the client retries over TCP (rate limiting's "slip")."""
    header = bytearray(response_header(query.raw, RCODE_NOERROR, 1))
    header[2] |= TC >> 8
    return finish_for_client(bytes(header) + query.question, query)


def _block_address(qtype: int, mode: str, page_ipv4: str | None, page_ipv6: str | None) -> bytes | None:
    if qtype == TYPE_A:
        if mode == "null_ip":
            return b"\x00\x00\x00\x00"
        if mode == "blockpage" and page_ipv4:
            return ipaddress.IPv4Address(page_ipv4).packed
    elif qtype == TYPE_AAAA:
        if mode == "null_ip":
            return bytes(16)
        if mode == "blockpage" and page_ipv6:
            return ipaddress.IPv6Address(page_ipv6).packed
    return None


def _soa_record(ttl: int) -> bytes:
    rdata = _SOA_RDATA_TAIL + struct.pack("!IIIII", 1, 3600, 600, 86400, ttl)
    return _POINTER_TO_QUESTION + struct.pack("!HHIH", TYPE_SOA, CLASS_IN, ttl, len(rdata)) + rdata


def cname_rewrite(query: Query, target: str, target_answer: bytes | None, ttl_cap: int = 300) -> bytes:
    """Safe search: answer ``name CNAME target`` plus the target's records of the queried type,
    taken from ``target_answer`` (the upstream's answer for the target; None for the alias
    alone). The CNAME's TTL is the shortest of the target's TTLs, capped, so both expire
    together and a policy change reaches clients soon. No OPT is added here."""
    records = []
    rcode = RCODE_NOERROR
    if target_answer is not None:
        parsed = dnslib.DNSRecord.parse(target_answer)
        records = [rr for rr in parsed.rr if rr.rtype == TYPE_CNAME or rr.rtype == query.qtype]
        rcode = parsed.header.rcode
    ttl = min([rr.ttl for rr in records] + [ttl_cap])
    header = response_header(query.raw, rcode, 1, ancount=1 + len(records))
    cname = _POINTER_TO_QUESTION + struct.pack("!HHI", TYPE_CNAME, CLASS_IN, ttl)
    target_wire = encode_name(target)
    body = cname + struct.pack("!H", len(target_wire)) + target_wire
    # The target's records are re-encoded without compression (their names pointed into the
    # upstream's message, not ours).
    for rr in records:
        owner = encode_name(str(rr.rname))
        if rr.rtype == TYPE_CNAME:
            rdata = encode_name(str(rr.rdata.label))
        else:
            buffer = dnslib.DNSBuffer()
            rr.rdata.pack(buffer)
            rdata = bytes(buffer.data)
        body += owner + struct.pack("!HHIH", rr.rtype, rr.rclass, rr.ttl, len(rdata)) + rdata
    return header + query.question + body


def encode_name(name: str) -> bytes:
    """Dotted name to uncompressed wire form."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\x00"
