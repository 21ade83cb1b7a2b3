"""RFC 8484 request decoding and answer headers, apart from any HTTP library."""

from __future__ import annotations

import base64

import dns.message
import dns.rrset
import pytest

from filterdns.server.doh_request import HttpError, cache_lifetime, decode_request, dns_response_headers

QUERY = dns.message.make_query("example.org", "A").to_wire()
ENCODED = base64.urlsafe_b64encode(QUERY).rstrip(b"=")


def test_get_and_post_give_the_same_message_and_id() -> None:
    got = decode_request(b"GET", b"/dns-query/p-101?ct&dns=" + ENCODED, None, b"")
    posted = decode_request(b"POST", b"/dns-query/p-101", b"application/dns-message", QUERY)
    assert got == posted and got.message == QUERY and got.client_id == "p-101"
    assert decode_request(b"GET", b"/dns-query?dns=" + ENCODED, None, b"").client_id == ""


def test_a_percent_encoded_id_is_decoded() -> None:
    assert decode_request(b"GET", b"/dns-query/ann%40school.test?dns=" + ENCODED, None, b"").client_id == "ann@school.test"


@pytest.mark.parametrize(
    ("method", "target", "content_type", "body", "status"),
    [
        (b"GET", b"/dns-query?dns=" + ENCODED[:-3] + b"!!!", None, b"", 400),  # not base64url
        (b"GET", b"/dns-query?dns=+" + ENCODED[1:], None, b"", 400),  # base64's '+', not base64url's '-'
        (b"GET", b"/dns-query?dns=AAAA", None, b"", 400),  # too short for a header
        (b"GET", b"/dns-query", None, b"", 400),  # no parameter
        (b"POST", b"/dns-query", b"application/x-www-form-urlencoded", QUERY, 415),
        (b"POST", b"/dns-query", None, QUERY, 415),
        (b"POST", b"/dns-query", b"application/dns-message", b"\0" * 70000, 413),
        (b"PUT", b"/dns-query", b"application/dns-message", QUERY, 405),
        (b"GET", b"/resolve?dns=" + ENCODED, None, b"", 404),
        (b"GET", b"/dns-query/a/b?dns=" + ENCODED, None, b"", 404),
        (b"GET", b"/dns-query/" + b"x" * 300 + b"?dns=" + ENCODED, None, b"", 404),
        (b"GET", b"/dns-query?dns=" + b"A" * 100_000, None, b"", 414),
    ],
)
def test_bad_requests_get_the_status_the_rfcs_ask_for(method, target, content_type, body, status) -> None:
    with pytest.raises(HttpError) as caught:
        decode_request(method, target, content_type, body)
    assert caught.value.status == status and caught.value.message.endswith(".")


def test_max_age_is_the_smallest_ttl() -> None:
    reply = dns.message.make_response(dns.message.make_query("example.org", "A"))
    reply.answer.append(dns.rrset.from_text("example.org.", 300, "IN", "CNAME", "cdn.example.net."))
    reply.answer.append(dns.rrset.from_text("cdn.example.net.", 45, "IN", "A", "192.0.2.1"))
    headers = dict(dns_response_headers(reply.to_wire()))
    assert headers[b"cache-control"] == b"max-age=45"
    assert headers[b"content-type"] == b"application/dns-message"


def test_a_negative_answer_is_kept_for_its_negative_ttl() -> None:
    reply = dns.message.make_response(dns.message.make_query("nothing.example.org", "A"))
    reply.set_rcode(3)
    reply.authority.append(
        dns.rrset.from_text("example.org.", 3600, "IN", "SOA", "ns.example.org. host.example.org. 1 7200 900 86400 120")
    )
    assert cache_lifetime(reply.to_wire()) == 120
    assert cache_lifetime(b"\x00" * 5) == 0
