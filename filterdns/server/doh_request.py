"""RFC 8484 request and response rules, apart from any HTTP library: what a DoH request
must look like (``GET ?dns=<base64url>`` or ``POST`` of ``application/dns-message`` to
``/dns-query`` or ``/dns-query/<client id>``) and the headers of the answer.

Both the HTTP/2 and the HTTP/1.1 side call ``decode_request`` and ``dns_response``, so the
two protocols cannot drift apart. Every refusal is an ``HttpError`` with the status RFC 8484
and RFC 9110 ask for and a plain sentence for whoever reads it.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote

from filterdns.wire.rcodes import RCODE_NOERROR, RCODE_NXDOMAIN
from filterdns.wire.records import WireError, parse_layout

DNS_MESSAGE = b"application/dns-message"
PATH = "/dns-query"
MAX_DNS_MESSAGE = 65535
MAX_CLIENT_ID = 255  # two ChromeOS hashes joined by '-' are 129 characters
MAX_TARGET = 2 + (MAX_DNS_MESSAGE * 4) // 3 + len(PATH) + MAX_CLIENT_ID + 16
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")

Headers = list[tuple[bytes, bytes]]
# How an answer goes back, whatever the HTTP version: reply(status, headers, body).
Reply = Callable[[int, Headers, bytes], None]


class HttpError(Exception):
    """A request answered with ``status`` and ``message`` instead of a DNS answer."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True, slots=True)
class DohRequest:
    """A well-formed DoH request: the DNS message and the client id from the path ("" none)."""

    message: bytes
    client_id: str


def request_target(target: bytes) -> tuple[str, bytes]:
    """Split a request target into the client id ("" for none) and the query string; refuse
    any other path. Checked before a POST body is read, so a wrong URL costs nothing."""
    if len(target) > MAX_TARGET:
        raise HttpError(414, "The request URL is too long for a DNS query.")
    path, _, query = target.partition(b"?")
    try:
        text = path.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(404, "Not found: DNS queries go to /dns-query.") from None
    if text == PATH:
        return "", query
    if not text.startswith(PATH + "/"):
        raise HttpError(404, "Not found: DNS queries go to /dns-query.")
    client_id = unquote(text[len(PATH) + 1 :])
    if not client_id or "/" in client_id or len(client_id) > MAX_CLIENT_ID or not client_id.isprintable():
        raise HttpError(404, "Not found: the part after /dns-query/ must be one client id.")
    return client_id, query


def decode_request(method: bytes, target: bytes, content_type: bytes | None, body: bytes) -> DohRequest:
    """The DNS message of a GET or POST request, or ``HttpError``."""
    client_id, query = request_target(target)
    if method == b"GET":
        return DohRequest(_dns_parameter(query), client_id)
    if method == b"POST":
        media_type = (content_type or b"").split(b";", 1)[0].strip().lower()
        if media_type != DNS_MESSAGE:
            raise HttpError(415, "DNS queries must be sent as application/dns-message.")
        if len(body) > MAX_DNS_MESSAGE:
            raise HttpError(413, "The request body is larger than any DNS message.")
        if len(body) < 12:
            raise HttpError(400, "The request body is not a DNS message.")
        return DohRequest(body, client_id)
    raise HttpError(405, "Only GET and POST are used for DNS queries.", ((b"allow", b"GET, POST"),))


def _dns_parameter(query: bytes) -> bytes:
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name != b"dns":
            continue
        # RFC 8484 4.1: base64url without padding; padding is put back before decoding, and
        # any character outside the alphabet is refused rather than skipped.
        try:
            if b"+" in value or b"/" in value:
                raise ValueError("not base64url")
            message = b64decode(value.translate(_FROM_URLSAFE) + b"=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "The dns parameter is not valid base64url.") from None
        if len(message) < 12:
            raise HttpError(400, "The dns parameter is not a DNS message.")
        return message
    raise HttpError(400, "A GET request needs the dns parameter (?dns=...).")


def cache_lifetime(reply: bytes) -> int:
    """RFC 8484 5.1: an HTTP cache may keep the answer no longer than its smallest TTL; for a
    negative answer, the RFC 2308 negative TTL. Anything unreadable is not to be kept."""
    try:
        layout = parse_layout(reply)
    except WireError:
        return 0
    if layout.answer_count == 0 and layout.rcode in (RCODE_NOERROR, RCODE_NXDOMAIN):
        if layout.soa_negative_ttl is not None:
            return min(layout.soa_negative_ttl, layout.min_ttl)
    return layout.min_ttl


def dns_response_headers(reply: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of a 200 answer carrying ``reply`` (status left to the HTTP side)."""
    return [
        (b"content-type", DNS_MESSAGE),
        (b"content-length", str(len(reply)).encode()),
        (b"cache-control", b"max-age=%d" % cache_lifetime(reply)),
    ]


def reply_error(reply: Reply, error: HttpError) -> None:
    """Send ``error`` as a short plain-text answer that no cache keeps."""
    body = (error.message + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *error.headers,
    ]
    reply(error.status, headers, body)
