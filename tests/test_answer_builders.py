"""The answers filterdns builds itself (blocks, errors, safe-search rewrites), read back with two
independent DNS libraries so a byte-level slip in the builders cannot hide."""

from __future__ import annotations

import dataclasses

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dnslib
import pytest

from filterdns.config.model import BlockingConfig, Config
from filterdns.policy.engine import Decision
from filterdns.resolver.blocking import BlockResponder
from filterdns.wire.answer import (
    EDE_BLOCKED,
    EDE_FILTERED,
    SERVER_UDP_PAYLOAD,
    block_response,
    cname_rewrite,
    error_response,
)
from filterdns.wire.query import Query, parse_query
from filterdns.wire.rcodes import RCODE_BADVERS, RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL

TTL = 60
PAGE_V4 = "10.10.0.5"
PAGE_V6 = "fd00::5"


def make(name: str = "Blocked.Example", rdtype: str = "A", **kwargs) -> tuple[dns.message.Message, Query]:
    message = dns.message.make_query(name, rdtype, **kwargs)
    message.flags |= dns.flags.CD
    return message, parse_query(message.to_wire())


def read(reply: bytes, sent: dns.message.Message) -> dns.message.Message:
    """Parse with dnspython (as the reply to ``sent``) and dnslib; return dnspython's view."""
    dnslib.DNSRecord.parse(reply)
    response = dns.message.from_wire(reply, ignore_trailing=False)
    assert sent.is_response(response)
    assert response.id == sent.id
    assert response.flags & dns.flags.QR and response.flags & dns.flags.RA
    assert response.flags & dns.flags.RD and response.flags & dns.flags.CD
    assert not response.flags & dns.flags.AA
    return response


def addresses(response: dns.message.Message) -> list[str]:
    return [rr.to_text() for rrset in response.answer for rr in rrset]


def assert_nodata_with_soa(response: dns.message.Message, rcode: int = dns.rcode.NOERROR) -> None:
    assert response.rcode() == rcode
    assert response.answer == []
    (soa,) = response.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.ttl == TTL and soa[0].minimum == TTL


# --------------------------------------------------------------------------- block modes


@pytest.mark.parametrize(("rdtype", "address"), [("A", "0.0.0.0"), ("AAAA", "::")])
def test_null_ip_answers_the_unspecified_address(rdtype, address):
    sent, query = make(rdtype=rdtype)
    response = read(block_response(query, "null_ip", TTL), sent)
    assert response.rcode() == dns.rcode.NOERROR
    (rrset,) = response.answer
    assert rrset.name == sent.question[0].name and rrset.ttl == TTL
    assert addresses(response) == [address]


@pytest.mark.parametrize("rdtype", ["MX", "TXT", "HTTPS"])
def test_null_ip_gives_nodata_with_soa_for_other_types(rdtype):
    sent, query = make(rdtype=rdtype)
    assert_nodata_with_soa(read(block_response(query, "null_ip", TTL), sent))


def test_null_ip_for_another_class_is_nodata():
    sent, query = make(rdtype="A", rdclass="CH")
    assert_nodata_with_soa(read(block_response(query, "null_ip", TTL), sent))


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "MX"])
def test_nxdomain_mode(rdtype):
    sent, query = make(rdtype=rdtype)
    assert_nodata_with_soa(read(block_response(query, "nxdomain", TTL), sent), dns.rcode.NXDOMAIN)


def test_refused_mode_has_no_records():
    sent, query = make()
    response = read(block_response(query, "refused", TTL), sent)
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == [] and response.authority == []


@pytest.mark.parametrize(("rdtype", "address"), [("A", PAGE_V4), ("AAAA", PAGE_V6)])
def test_blockpage_answers_the_page_address(rdtype, address):
    sent, query = make(rdtype=rdtype)
    reply = block_response(query, "blockpage", TTL, page_ipv4=PAGE_V4, page_ipv6=PAGE_V6)
    assert addresses(read(reply, sent)) == [address]


def test_blockpage_without_an_ipv6_page_is_nodata_for_aaaa():
    sent, query = make(rdtype="AAAA")
    reply = block_response(query, "blockpage", TTL, page_ipv4=PAGE_V4)
    assert_nodata_with_soa(read(reply, sent))


def test_blockpage_mx_is_nodata():
    sent, query = make(rdtype="MX")
    reply = block_response(query, "blockpage", TTL, page_ipv4=PAGE_V4, page_ipv6=PAGE_V6)
    assert_nodata_with_soa(read(reply, sent))


@pytest.mark.parametrize(("override", "expected"), [(RCODE_NXDOMAIN, dns.rcode.NXDOMAIN), (0, dns.rcode.NOERROR)])
def test_bypass_rcode_override_wins_over_the_mode(override, expected):
    sent, query = make("use-application-dns.net", "A")
    reply = block_response(query, "null_ip", TTL, page_ipv4=PAGE_V4, rcode=override)
    assert_nodata_with_soa(read(reply, sent), expected)


def test_mixed_case_question_is_echoed_exactly():
    sent, query = make("WwW.BlOcKeD.Example")
    reply = block_response(query, "null_ip", TTL)
    assert reply[12 : query.question_end] == sent.to_wire()[12 : query.question_end]
    assert b"\x03WwW\x07BlOcKeD" in reply


# --------------------------------------------------------------------------- EDE and EDNS


def responder(**blocking) -> BlockResponder:
    return BlockResponder(Config().with_policy(blocking=BlockingConfig(**blocking)))


CATEGORY_BLOCK = Decision("block", "scheduled-category", "year7", "null_ip", category="social", schedule_window="Tue 08:45-10:45")
DENY_BLOCK = Decision("block", "deny-list", "year7", "nxdomain")
BYPASS_BLOCK = Decision("block", "bypass-protection", "year7", "null_ip", rcode_override=RCODE_NXDOMAIN)


def ede(response: dns.message.Message) -> tuple[int, str]:
    (error,) = response.extended_errors()
    return error.code, error.text


def test_category_block_carries_ede_17_naming_category_group_and_window():
    sent, query = make(use_edns=0)
    response = read(responder().respond(query, CATEGORY_BLOCK, None), sent)
    assert addresses(response) == ["0.0.0.0"]
    code, text = ede(response)
    assert code == EDE_FILTERED == 17
    assert text == "category social blocked for group year7 during Tue 08:45-10:45"
    assert response.edns == 0 and response.payload == SERVER_UDP_PAYLOAD


def test_list_and_bypass_blocks_carry_ede_15():
    sent, query = make(use_edns=0)
    response = read(responder().respond(query, DENY_BLOCK, None), sent)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert ede(response) == (EDE_BLOCKED, "deny-list for group year7")

    sent, query = make("use-application-dns.net", use_edns=0)
    response = read(responder().respond(query, BYPASS_BLOCK, None), sent)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert ede(response) == (EDE_BLOCKED, "bypass-protection for group year7")


def test_no_opt_when_the_client_sent_none():
    sent, query = make()
    reply = responder().respond(query, CATEGORY_BLOCK, None)
    response = read(reply, sent)
    assert response.edns == -1 and response.extended_errors() == []
    assert reply[10:12] == b"\x00\x00"  # ARCOUNT


def test_do_bit_is_echoed_in_our_opt():
    sent, query = make(use_edns=0, want_dnssec=True)
    response = read(responder().respond(query, CATEGORY_BLOCK, None), sent)
    assert response.ednsflags & dns.flags.DO


def test_blockpage_addresses_come_from_the_blocking_config():
    sent, query = make(use_edns=0)
    decision = dataclasses.replace(CATEGORY_BLOCK, block_mode="blockpage")
    response = read(responder(page_ipv4=PAGE_V4).respond(query, decision, None), sent)
    assert addresses(response) == [PAGE_V4]
    assert ede(response)[0] == EDE_FILTERED


@pytest.mark.parametrize(("address", "prefix"), [("192.0.2.25", 32), ("192.0.2.0", 24), ("2001:db8::7", 128)])
def test_client_subnet_is_echoed_with_scope_equal_to_source(address, prefix):
    sent, query = make(use_edns=0, options=[dns.edns.ECSOption(address, prefix)])
    response = read(responder().respond(query, CATEGORY_BLOCK, query.client_subnet), sent)
    (subnet,) = [o for o in response.options if o.otype == dns.edns.ECS]
    assert (subnet.address, subnet.srclen, subnet.scopelen) == (address, prefix, prefix)
    assert ede(response)[0] == EDE_FILTERED


# --------------------------------------------------------------------------- errors


def test_formerr_without_a_question():
    sent, _ = make()
    reply = error_response(sent.to_wire(), RCODE_FORMERR)
    response = dns.message.from_wire(reply)
    dnslib.DNSRecord.parse(reply)
    assert response.id == sent.id and response.rcode() == dns.rcode.FORMERR
    assert response.question == [] and len(reply) == 12


def test_servfail_with_the_question():
    sent, query = make(use_edns=0)
    response = read(error_response(query.raw, RCODE_SERVFAIL, query.question_end, query), sent)
    assert response.rcode() == dns.rcode.SERVFAIL
    assert response.answer == [] and response.edns == 0


def test_refused_without_a_query_object_has_no_opt():
    sent, query = make(use_edns=0)
    response = read(error_response(query.raw, RCODE_REFUSED, query.question_end), sent)
    assert response.rcode() == dns.rcode.REFUSED and response.edns == -1


def test_badvers_uses_the_extended_rcode_with_opt_version_0():
    sent, query = make(use_edns=1)
    assert query.edns_version == 1
    response = read(error_response(query.raw, RCODE_BADVERS, query.question_end, query), sent)
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0


# --------------------------------------------------------------------------- safe search


def upstream_answer(name: str, *records: dnslib.RR, rcode: int = 0) -> bytes:
    reply = dnslib.DNSRecord.question(name, "A").reply()
    reply.header.rcode = rcode
    for record in records:
        reply.add_answer(record)
    return reply.pack()


def test_cname_rewrite_with_the_targets_addresses():
    sent, query = make("WWW.Google.com", use_edns=0)
    target_answer = upstream_answer(
        "forcesafesearch.google.com",
        dnslib.RR("forcesafesearch.google.com", dnslib.QTYPE.A, rdata=dnslib.A("216.239.38.120"), ttl=200),
        dnslib.RR("forcesafesearch.google.com", dnslib.QTYPE.AAAA, rdata=dnslib.AAAA("2001:4860:4802:32::78"), ttl=10),
    )
    reply = cname_rewrite(query, "forcesafesearch.google.com", target_answer)
    response = read(reply, sent)
    assert reply[12 : query.question_end] == query.question
    cname, a = response.answer
    assert cname.rdtype == dns.rdatatype.CNAME
    assert cname[0].target.to_text() == "forcesafesearch.google.com."
    # The AAAA of the target is not for an A query; the CNAME lives as long as the A.
    assert (a.rdtype, a.name.to_text(), addresses(response)[1]) == (dns.rdatatype.A, "forcesafesearch.google.com.", "216.239.38.120")
    assert cname.ttl == a.ttl == 200


def test_cname_rewrite_follows_a_chain_in_the_target_answer_and_caps_the_ttl():
    sent, query = make("www.youtube.com")
    target_answer = upstream_answer(
        "restrict.youtube.com",
        dnslib.RR("restrict.youtube.com", dnslib.QTYPE.CNAME, rdata=dnslib.CNAME("edge.youtube.example"), ttl=3600),
        dnslib.RR("edge.youtube.example", dnslib.QTYPE.A, rdata=dnslib.A("127.0.0.9"), ttl=3600),
    )
    response = read(cname_rewrite(query, "restrict.youtube.com", target_answer, ttl_cap=300), sent)
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.CNAME, dns.rdatatype.A]
    assert response.answer[0].ttl == 300
    assert addresses(response)[-1] == "127.0.0.9"


def test_cname_rewrite_alone():
    sent, query = make("www.bing.com", "HTTPS")
    response = read(cname_rewrite(query, "strict.bing.com", None), sent)
    (cname,) = response.answer
    assert cname[0].target.to_text() == "strict.bing.com." and cname.ttl == 300
    assert response.rcode() == dns.rcode.NOERROR


def test_cname_rewrite_keeps_the_targets_rcode():
    # RFC 6604: the rcode of a CNAME chain is that of its last name.
    sent, query = make("www.google.com")
    target_answer = upstream_answer("forcesafesearch.google.com", rcode=RCODE_NXDOMAIN)
    response = read(cname_rewrite(query, "forcesafesearch.google.com", target_answer), sent)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert len(response.answer) == 1
