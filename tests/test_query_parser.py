"""parse_query: the hot-path reader of incoming queries, fed by dnspython-built packets.

Every malformed input must end as a ``QueryError`` carrying the rcode to answer (or None to
drop), never as another exception: the property test at the bottom holds it to that.
"""

from __future__ import annotations

import base64
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterdns.wire.query import (
    CLASS_IN,
    OPTION_MAC_RAW,
    OPTION_MAC_TEXT,
    TYPE_AAAA,
    TYPE_MX,
    Query,
    QueryError,
    parse_mac_text,
    parse_query,
)
from filterdns.wire.rcodes import RCODE_FORMERR, RCODE_NOTIMP

MAC = "aa:bb:cc:dd:ee:0f"
# The fixed part of an OPT record at the root: name, type 41, payload 1232, ext-rcode, version,
# flags, then the rdata length.
OPT_HEAD = b"\x00" + struct.pack("!HHBBH", 41, 1232, 0, 0, 0)


def wire(name: str | dns.name.Name = "www.example.org", rdtype: str = "A", **kwargs) -> bytes:
    return dns.message.make_query(name, rdtype, **kwargs).to_wire()


def parse_error(raw: bytes) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse_query(raw)
    return caught.value


def with_options(*options: dns.edns.Option, **kwargs) -> Query:
    return parse_query(wire(use_edns=0, options=list(options), **kwargs))


# --------------------------------------------------------------------------- the question


def test_name_is_lower_cased_but_the_question_bytes_are_kept():
    raw = wire("WwW.ExAmPlE.ORG", "AAAA")
    query = parse_query(raw)
    assert query.name == "www.example.org"
    assert query.question == b"\x03WwW\x07ExAmPlE\x03ORG\x00" + struct.pack("!HH", TYPE_AAAA, CLASS_IN)
    assert query.question_end == 12 + len(query.question)
    assert query.id_bytes == raw[:2]
    assert (query.qtype, query.qclass) == (TYPE_AAAA, CLASS_IN)


def test_qtype_and_qclass_are_read():
    query = parse_query(dns.message.make_query("example.org", "MX", rdclass="CH").to_wire())
    assert (query.qtype, query.qclass) == (TYPE_MX, 3)


def test_root_name_is_the_empty_string():
    assert parse_query(wire(".", "NS")).name == ""


def test_without_edns_the_defaults_apply():
    query = parse_query(wire())
    assert not query.has_opt
    assert (query.udp_size, query.do_bit, query.edns_version) == (512, False, 0)
    assert query.client_subnet is None and query.mac is None


# --------------------------------------------------------------------------- EDNS


@pytest.mark.parametrize(("payload", "expected"), [(4096, 4096), (1232, 1232), (512, 512), (100, 512), (0, 512)])
def test_edns_payload_size_has_a_floor_of_512(payload, expected):
    query = parse_query(wire(use_edns=0, payload=payload))
    assert query.has_opt
    assert query.udp_size == expected


def test_do_bit_and_edns_version():
    assert parse_query(wire(use_edns=0, want_dnssec=True)).do_bit
    assert not parse_query(wire(use_edns=0)).do_bit
    assert parse_query(wire(use_edns=1)).edns_version == 1
    assert parse_query(wire(use_edns=0)).edns_version == 0


@pytest.mark.parametrize(
    ("address", "prefix", "family", "text", "single_host"),
    [
        ("192.0.2.25", 32, 1, "192.0.2.25", True),
        ("2001:db8::25", 128, 2, "2001:db8::25", True),
        ("192.0.2.0", 24, 1, "192.0.2.0", False),
        ("2001:db8:1::", 48, 2, "2001:db8:1::", False),
    ],
)
def test_client_subnet(address, prefix, family, text, single_host):
    subnet = with_options(dns.edns.ECSOption(address, prefix)).client_subnet
    assert subnet is not None
    assert (subnet.family, subnet.source_prefix, subnet.address) == (family, prefix, text)
    assert subnet.is_single_host() is single_host


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\x01\x18",  # shorter than family + two prefix lengths
        b"\x00\x03\x18\x00\xc0\x00\x02",  # unknown family
        b"\x00\x01\x21\x00\xc0\x00\x02\x01\x00",  # /33 for IPv4
        b"\x00\x01\x18\x00\xc0\x00\x02\x00",  # /24 with four address bytes instead of three
        b"\x00\x02\x40\x00\x20\x01",  # /64 with two address bytes
    ],
)
def test_malformed_client_subnet_is_formerr_with_the_question_echoable(value):
    raw = wire(use_edns=0, options=[dns.edns.GenericOption(8, value)])
    error = parse_error(raw)
    assert error.rcode == RCODE_FORMERR
    assert error.question_end == 12 + len(b"\x03www\x07example\x03org\x00") + 4


def test_mac_option_65001_raw_bytes():
    query = with_options(dns.edns.GenericOption(OPTION_MAC_RAW, bytes.fromhex("aabbccddee0f")))
    assert query.mac == MAC


def test_mac_option_65001_of_the_wrong_length_is_ignored():
    assert with_options(dns.edns.GenericOption(OPTION_MAC_RAW, b"\xaa\xbb\xcc")).mac is None


@pytest.mark.parametrize(
    "value",
    [b"AA:BB:CC:DD:EE:0F", b"aa-bb-cc-dd-ee-0f", b"aabbccddee0f", base64.b64encode(bytes.fromhex("aabbccddee0f"))],
)
def test_mac_option_65073_text_and_base64(value):
    assert with_options(dns.edns.GenericOption(OPTION_MAC_TEXT, value)).mac == MAC


@pytest.mark.parametrize("value", [b"", b"not a mac", b"aa:bb:cc:dd:ee", base64.b64encode(b"12345"), b"\xff\xfe"])
def test_mac_option_65073_garbage_gives_no_mac(value):
    assert with_options(dns.edns.GenericOption(OPTION_MAC_TEXT, value)).mac is None


def test_mac_text_with_spaces_is_not_a_five_byte_mac():
    assert parse_mac_text(b"aabb ccdd ee") is None


def test_unknown_options_are_ignored():
    query = with_options(
        dns.edns.GenericOption(65000, b"\x01\x02"),
        dns.edns.GenericOption(12, bytes(20)),  # padding
        dns.edns.ECSOption("192.0.2.9", 32),
        dns.edns.GenericOption(OPTION_MAC_RAW, bytes.fromhex("aabbccddee0f")),
    )
    assert query.client_subnet is not None and query.client_subnet.address == "192.0.2.9"
    assert query.mac == MAC


def test_option_running_past_the_opt_record_is_formerr():
    option = struct.pack("!HH", 65000, 10) + b"abc"  # claims 10 bytes, has 3
    raw = wire() + OPT_HEAD + struct.pack("!H", len(option)) + option
    raw = raw[:10] + b"\x00\x01" + raw[12:]
    assert parse_error(raw).rcode == RCODE_FORMERR


def test_two_opt_records_are_formerr():
    raw = wire(use_edns=0)
    second = OPT_HEAD + b"\x00\x00"
    raw = raw[:10] + b"\x00\x02" + raw[12:] + second
    error = parse_error(raw)
    assert error.rcode == RCODE_FORMERR
    assert error.question_end > 12


def test_opt_in_the_answer_section_is_formerr():
    raw = wire()
    raw = raw[:6] + b"\x00\x01" + raw[8:] + OPT_HEAD + b"\x00\x00"
    assert parse_error(raw).rcode == RCODE_FORMERR


def test_records_before_the_opt_are_skipped():
    # An answer record with a compressed owner, then the OPT: the parser must walk past it.
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x7f\x00\x00\x01"
    raw = wire(use_edns=0, want_dnssec=True)
    question_end = parse_query(raw).question_end
    raw = raw[:6] + b"\x00\x01" + raw[8:question_end] + record + raw[question_end:]
    query = parse_query(raw)
    assert query.has_opt and query.do_bit


# --------------------------------------------------------------------------- refusals


def test_a_response_is_dropped():
    message = dns.message.make_query("example.org", "A")
    message.flags |= dns.flags.QR
    assert parse_error(message.to_wire()).rcode is None


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE])
def test_other_opcodes_are_notimp(opcode):
    message = dns.message.make_query("example.org", "A")
    message.set_opcode(opcode)
    assert parse_error(message.to_wire()).rcode == RCODE_NOTIMP


def test_qdcount_zero_and_two_are_formerr():
    header_only = wire()[:12]
    assert parse_error(header_only[:4] + b"\x00\x00" + header_only[6:]).rcode == RCODE_FORMERR
    raw = wire()
    two = raw[:4] + b"\x00\x02" + raw[6:] + raw[12:]
    assert parse_error(two).rcode == RCODE_FORMERR


@pytest.mark.parametrize("length", [0, 1, 2, 11])
def test_shorter_than_a_header_is_dropped(length):
    assert parse_error(wire()[:length]).rcode is None


def test_truncated_question_is_formerr_without_a_question_to_echo():
    raw = wire()
    for cut in (13, 20, len(raw) - 4, len(raw) - 1):
        error = parse_error(raw[:cut])
        assert error.rcode == RCODE_FORMERR
        assert error.question_end == 0


def test_truncated_opt_record_is_formerr_with_the_question():
    raw = wire(use_edns=0, options=[dns.edns.ECSOption("192.0.2.1", 32)])
    question_end = parse_query(raw).question_end
    for cut in (question_end + 1, question_end + 6, len(raw) - 2):
        error = parse_error(raw[:cut])
        assert error.rcode == RCODE_FORMERR
        assert error.question_end == question_end


def test_compression_pointer_in_the_question_is_formerr():
    raw = wire()[:12] + b"\x03www\xc0\x0c" + struct.pack("!HH", 1, 1)
    assert parse_error(raw).rcode == RCODE_FORMERR


def test_name_longer_than_255_bytes_is_formerr():
    labels = [b"a" * 63] * 4  # 4 * 64 + 1 = 257 bytes on the wire
    raw = wire()[:12] + b"".join(bytes([63]) + label for label in labels) + b"\x00" + struct.pack("!HH", 1, 1)
    assert parse_error(raw).rcode == RCODE_FORMERR


def test_name_of_exactly_255_bytes_is_accepted():
    labels = [b"a" * 63] * 3 + [b"b" * 61]  # 3 * 64 + 62 + 1 = 255
    raw = wire()[:12] + b"".join(bytes([len(label)]) + label for label in labels) + b"\x00" + struct.pack("!HH", 1, 1)
    assert len(parse_query(raw).name) == 253


# --------------------------------------------------------------------------- odd label bytes


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([b"a.b", b"test"], "a\\046b.test"),  # a dot inside a label is not a boundary
        ([b"a b", b"test"], "a\\032b.test"),
        ([b"A\x00Z", b"test"], "a\\000z.test"),
        ([b"caf\xc3\xa9", b"test"], "caf\\195\\169.test"),
        ([b"x\x7f", b"TEST"], "x\\127.test"),
    ],
)
def test_label_bytes_outside_printable_ascii_and_inner_dots_are_escaped(labels, expected):
    name = dns.name.Name([*labels, b""])
    assert parse_query(wire(name)).name == expected


def test_backslash_in_a_label_is_escaped_so_names_cannot_collide():
    literal = parse_query(wire(dns.name.Name([b"a\\046b", b"test", b""]))).name
    dotted = parse_query(wire(dns.name.Name([b"a.b", b"test", b""]))).name
    assert literal != dotted
    assert literal == "a\\092046b.test"


# --------------------------------------------------------------------------- cache key


def test_cache_key_ignores_case_and_id_but_not_do_cd_or_type():
    base = dns.message.make_query("www.example.org", "A", use_edns=0)
    other_case = dns.message.make_query("WWW.Example.ORG", "A", use_edns=0)
    other_case.id = (base.id + 1) & 0xFFFF
    key = parse_query(base.to_wire()).cache_key
    assert parse_query(other_case.to_wire()).cache_key == key

    with_do = dns.message.make_query("www.example.org", "A", use_edns=0, want_dnssec=True)
    with_cd = dns.message.make_query("www.example.org", "A", use_edns=0)
    with_cd.flags |= dns.flags.CD
    aaaa = dns.message.make_query("www.example.org", "AAAA", use_edns=0)
    keys = {parse_query(m.to_wire()).cache_key for m in (with_do, with_cd, aaaa)}
    assert key not in keys and len(keys) == 3


def test_cache_key_ignores_client_specific_options():
    plain = parse_query(wire(use_edns=0)).cache_key
    tagged = with_options(
        dns.edns.ECSOption("192.0.2.9", 32), dns.edns.GenericOption(OPTION_MAC_RAW, bytes.fromhex("aabbccddee0f"))
    ).cache_key
    assert tagged == plain


# --------------------------------------------------------------------------- property


def _never_crashes(raw: bytes) -> None:
    try:
        query = parse_query(raw)
    except QueryError as error:
        assert error.rcode in (None, RCODE_FORMERR, RCODE_NOTIMP)
        assert 0 <= error.question_end <= len(raw)
        return
    assert isinstance(query, Query)
    assert 12 < query.question_end <= len(raw)
    assert query.udp_size >= 512


_PROPERTY = settings(
    max_examples=5000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@_PROPERTY
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_a_query_or_a_query_error(raw):
    _never_crashes(raw)


_VALID_PREFIX = wire("www.example.org", use_edns=0, options=[dns.edns.ECSOption("192.0.2.1", 24)])


@settings(_PROPERTY, max_examples=2000)
@given(
    st.integers(min_value=0, max_value=len(_VALID_PREFIX)),
    st.binary(max_size=120),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
)
def test_mutated_real_queries_give_a_query_or_a_query_error(cut, tail, ancount, arcount):
    # Plain random bytes rarely get past the header; splicing noise into a real query with
    # small record counts drives the record and option walkers too.
    raw = bytearray(_VALID_PREFIX[:cut] + tail)
    if len(raw) >= 12:
        raw[2] &= 0x07  # QR=0, opcode QUERY
        raw[4:6] = b"\x00\x01"
        raw[6:8] = ancount.to_bytes(2, "big")
        raw[10:12] = arcount.to_bytes(2, "big")
    _never_crashes(bytes(raw))
