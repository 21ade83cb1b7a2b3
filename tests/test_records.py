"""Wire-format walking and editing (filterdns.wire.records), checked against dnslib."""

from __future__ import annotations

import struct

import pytest
from dnslib import AAAA, CNAME, EDNS0, QTYPE, RCODE, RR, SOA, A, DNSRecord, EDNSOption
from hypothesis import given, settings
from hypothesis import strategies as st

from filterdns.wire.records import (
    WireError,
    append_opt,
    fit_to_size,
    parse_layout,
    patch_ttls,
    read_ttl,
    skip_name,
    strip_opt,
)


def reply(name: str = "www.example.com", qtype: str = "A") -> DNSRecord:
    return DNSRecord.question(name, qtype).reply()


def soa(ttl: int, minimum: int, zone: str = "example.com") -> RR:
    times = (1, 7200, 900, 1209600, minimum)
    return RR(zone, QTYPE.SOA, ttl=ttl, rdata=SOA("ns1." + zone, "hostmaster." + zone, times))


def with_edns(record: DNSRecord, *, do: bool = True, ext_rcode: int = 0) -> DNSRecord:
    record.add_ar(EDNS0(udp_len=1232, flags="do" if do else "", ext_rcode=ext_rcode))
    return record


def positive_message() -> bytes:
    """CNAME + A answers, an NS in authority, glue in additional, and an OPT with DO set."""
    record = reply()
    record.add_answer(RR("www.example.com", QTYPE.CNAME, ttl=50_000, rdata=CNAME("web.example.com")))
    record.add_answer(RR("web.example.com", QTYPE.A, ttl=40_000, rdata=A("192.0.2.1")))
    record.add_auth(RR("example.com", QTYPE.NS, ttl=90_000, rdata=CNAME("ns1.example.com")))
    record.add_ar(RR("ns1.example.com", QTYPE.AAAA, ttl=45_000, rdata=AAAA("2001:db8::1")))
    return with_edns(record).pack()


# parse_layout


def test_layout_positive_answer_excludes_opt_from_ttls() -> None:
    message = positive_message()
    layout = parse_layout(message)
    question = DNSRecord.question("www.example.com").pack()[12:]
    assert layout.rcode == 0
    assert layout.answer_count == 2
    assert layout.question_end == 12 + len(question)
    assert message[12 : layout.question_end] == question
    # The OPT "TTL" with DO set is 0x8000 = 32768, below every real TTL: it must not count.
    assert [read_ttl(message, offset) for offset in layout.ttl_offsets] == [50_000, 40_000, 90_000, 45_000]
    assert layout.min_ttl == 40_000
    assert layout.soa_negative_ttl is None
    assert layout.opt_end == len(message)
    assert layout.opt_start is not None
    assert message[layout.opt_start] == 0
    assert struct.unpack_from("!H", message, layout.opt_start + 1)[0] == QTYPE.OPT


def test_min_ttl_spans_authority_and_additional() -> None:
    record = reply()
    record.add_answer(RR("www.example.com", QTYPE.A, ttl=600, rdata=A("192.0.2.1")))
    record.add_auth(RR("example.com", QTYPE.NS, ttl=300, rdata=CNAME("ns1.example.com")))
    record.add_ar(RR("ns1.example.com", QTYPE.A, ttl=120, rdata=A("192.0.2.53")))
    assert parse_layout(record.pack()).min_ttl == 120


def test_ttl_with_top_bit_set_reads_as_zero() -> None:
    record = reply()
    record.add_answer(RR("www.example.com", QTYPE.A, ttl=0x80000001, rdata=A("192.0.2.1")))
    message = record.pack()
    layout = parse_layout(message)
    assert layout.min_ttl == 0
    assert read_ttl(message, layout.ttl_offsets[0]) == 0


@pytest.mark.parametrize(
    ("rcode", "soa_ttl", "minimum", "expected"),
    [
        (RCODE.NXDOMAIN, 3600, 300, 300),  # SOA MINIMUM is lower
        (RCODE.NXDOMAIN, 100, 300, 100),  # SOA TTL is lower
        (RCODE.NOERROR, 900, 60, 60),  # NODATA
    ],
)
def test_negative_ttl_from_soa(rcode: int, soa_ttl: int, minimum: int, expected: int) -> None:
    record = reply()
    record.header.rcode = rcode
    record.add_auth(soa(soa_ttl, minimum))
    layout = parse_layout(with_edns(record).pack())
    assert layout.rcode == rcode
    assert layout.answer_count == 0
    assert layout.soa_negative_ttl == expected
    assert layout.min_ttl == soa_ttl


def test_soa_with_compressed_names_in_rdata() -> None:
    # dnslib compresses MNAME/RNAME against the question; the walk must follow pointers there.
    record = DNSRecord.question("missing.example.com").reply()
    record.header.rcode = RCODE.NXDOMAIN
    record.add_auth(soa(7200, 1800))
    message = record.pack()
    assert b"\xc0" in message[parse_layout(message).question_end :]
    assert parse_layout(message).soa_negative_ttl == 1800


def test_extended_rcode_comes_from_opt() -> None:
    message = with_edns(reply(), ext_rcode=1).pack()  # BADVERS = 16
    assert parse_layout(message).rcode == 16


def test_empty_response_has_zero_min_ttl() -> None:
    layout = parse_layout(reply().pack())
    assert (layout.min_ttl, layout.ttl_offsets, layout.opt_start) == (0, (), None)


# malformed input


def header(qdcount: int = 1, ancount: int = 0, arcount: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0x1234, 0x8180, qdcount, ancount, 0, arcount)


@pytest.mark.parametrize(
    "question",
    [
        pytest.param(b"\xc0\x0c\x00\x01\x00\x01", id="pointer-to-itself"),
        pytest.param(b"\x01a\xc0\x0c\x00\x01\x00\x01", id="loop-back-to-name-start"),
        pytest.param(b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 40, id="forward-pointer"),
        pytest.param(b"\xc0\x02\x00\x01\x00\x01", id="pointer-into-header"),
        pytest.param(b"\x01a\xc0", id="truncated-pointer"),
        pytest.param(b"\x05ab", id="label-past-end"),
        pytest.param(b"\x41abc\x00\x00\x01\x00\x01", id="extended-label-type"),
        pytest.param(b"\x3f" + b"a" * 63 + b"\x00\x00\x01", id="question-without-class"),
        pytest.param((b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01", id="name-over-255-bytes"),
    ],
)
def test_malformed_question_raises(question: bytes) -> None:
    with pytest.raises(WireError):
        parse_layout(header() + question)


def test_loop_between_two_names_raises() -> None:
    # The question is fine; the answer's name is a label and then a pointer back to itself,
    # which passes the "points backwards" test against the pointer but not the run start.
    question = b"\x01a\x00\x00\x01\x00\x01"
    answer_offset = 12 + len(question)
    answer = b"\x01b" + struct.pack("!H", 0xC000 | answer_offset)
    answer += struct.pack("!HHIH", 1, 1, 60, 4) + b"\x7f\x00\x00\x01"
    with pytest.raises(WireError, match="backwards"):
        parse_layout(header(ancount=1) + question + answer)


def test_long_pointer_chain_is_bounded() -> None:
    # 200 pointers, each to the one before it: every jump goes backwards, yet no real name
    # needs that many, and following them all would let a peer buy CPU time cheaply.
    question = b"\x00\x00\x01\x00\x01"  # root name at offset 12
    chain_start = 12 + len(question)
    chain = struct.pack("!H", 0xC000 | 12) + b"".join(
        struct.pack("!H", 0xC000 | (chain_start + 2 * i)) for i in range(199)
    )
    message = header() + question + chain
    assert skip_name(message, chain_start + 2 * 100) == chain_start + 2 * 101  # 101 jumps: fine
    with pytest.raises(WireError, match="too many"):
        skip_name(message, chain_start + 2 * 199)


def test_every_truncation_of_a_valid_message_raises() -> None:
    message = positive_message()
    for cut in range(len(message)):
        with pytest.raises(WireError):
            parse_layout(message[:cut])


def test_misplaced_or_repeated_opt_raises() -> None:
    opt = struct.pack("!BHHBBHH", 0, QTYPE.OPT, 1232, 0, 0, 0, 0)
    base = reply().pack()
    in_answer = bytearray(base + opt)
    struct.pack_into("!H", in_answer, 6, 1)
    with pytest.raises(WireError):
        parse_layout(bytes(in_answer))
    twice = bytearray(base + opt + opt)
    struct.pack_into("!H", twice, 10, 2)
    with pytest.raises(WireError):
        parse_layout(bytes(twice))


def test_bad_soa_length_raises() -> None:
    record = reply()
    record.header.rcode = RCODE.NXDOMAIN
    record.add_auth(soa(60, 60))
    message = bytearray(record.pack())
    rdlength_offset = parse_layout(bytes(message)).ttl_offsets[0] + 4
    rdlength = struct.unpack_from("!H", message, rdlength_offset)[0]
    struct.pack_into("!H", message, rdlength_offset, rdlength - 4)
    with pytest.raises(WireError):
        parse_layout(bytes(message[:-4]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_wire_error(data: bytes) -> None:
    try:
        parse_layout(header(qdcount=1, ancount=2, arcount=1) + data)
    except WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_messages_parse_or_raise_wire_error(data: st.DataObject) -> None:
    message = bytearray(positive_message())
    for _ in range(data.draw(st.integers(1, 4))):
        message[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
    try:
        layout = parse_layout(bytes(message))
    except WireError:
        return
    assert all(12 <= offset <= len(message) - 4 for offset in layout.ttl_offsets)


# OPT editing


def test_strip_then_append_opt_round_trips() -> None:
    message = positive_message()
    stripped = strip_opt(message, parse_layout(message))
    parsed = DNSRecord.parse(stripped)
    assert parsed.header.ar == 1
    assert [QTYPE[rr.rtype] for rr in parsed.ar] == ["AAAA"]
    assert parse_layout(stripped).opt_start is None
    assert append_opt(stripped, 1232, True) == message


def test_append_opt_fields_read_back_by_dnslib() -> None:
    cookie = struct.pack("!HH", 10, 8) + b"\x01\x02\x03\x04\x05\x06\x07\x08"
    message = append_opt(reply().pack(), 4096, False, extended_rcode=1, options=cookie)
    parsed = DNSRecord.parse(message)
    (opt,) = parsed.ar
    assert opt.rtype == QTYPE.OPT
    assert opt.rclass == 4096  # UDP payload size
    assert opt.ttl == 1 << 24  # extended rcode 1, version 0, DO clear
    assert opt.rdata == [EDNSOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08")]
    assert parse_layout(message).rcode == 16


def test_strip_opt_without_opt_returns_message() -> None:
    message = reply().pack()
    assert strip_opt(message, parse_layout(message)) is message


# truncation


def big_response(edns: bool) -> bytes:
    record = reply()
    for i in range(60):
        record.add_answer(RR("www.example.com", QTYPE.A, ttl=60, rdata=A(f"192.0.2.{i}")))
    record.add_ar(RR("ns1.example.com", QTYPE.A, ttl=60, rdata=A("192.0.2.53")))
    return (with_edns(record) if edns else record).pack()


@pytest.mark.parametrize("edns", [True, False])
def test_fit_to_size_truncates_and_keeps_opt(edns: bool) -> None:
    message = big_response(edns)
    assert len(message) > 512
    fitted = fit_to_size(message, 512)
    parsed = DNSRecord.parse(fitted)
    assert parsed.header.tc == 1
    assert parsed.header.id == DNSRecord.parse(message).header.id
    assert (parsed.header.a, parsed.header.auth) == (0, 0)
    assert str(parsed.q.qname) == "www.example.com."
    if edns:
        assert parsed.header.ar == 1
        assert parsed.ar[0].rtype == QTYPE.OPT
        assert fitted.endswith(message[parse_layout(message).opt_start :])
    else:
        assert parsed.header.ar == 0
    assert len(fitted) <= 512


def test_fit_to_size_leaves_small_messages_alone() -> None:
    message = positive_message()
    assert fit_to_size(message, len(message)) is message


def test_patch_ttls_writes_each_offset() -> None:
    message = positive_message()
    layout = parse_layout(message)
    patched = patch_ttls(message, layout.ttl_offsets, [1, 2, 3, 4])
    assert [rr.ttl for rr in DNSRecord.parse(patched).rr] == [1, 2]
    assert [read_ttl(patched, offset) for offset in layout.ttl_offsets] == [1, 2, 3, 4]
    assert len(patched) == len(message)


def test_without_opt_gives_the_layout_of_the_stripped_message():
    """The layout handed to the cache after stripping OPT must be what a fresh parse finds,
    even when records follow the OPT record."""
    from dnslib import EDNS0, RR, A, DNSRecord

    from filterdns.wire.records import without_opt

    record = DNSRecord.question("opt.example")
    reply = record.reply()
    reply.add_answer(RR("opt.example", rdata=A("127.0.0.1"), ttl=300))
    reply.add_ar(EDNS0(udp_len=1232))
    reply.add_ar(RR("extra.example", rdata=A("127.0.0.2"), ttl=60))
    message = reply.pack()
    stripped, layout = without_opt(message, parse_layout(message))
    assert layout == parse_layout(stripped)
    assert layout.opt_start is None and len(layout.ttl_offsets) == 2
