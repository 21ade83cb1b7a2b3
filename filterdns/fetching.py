"""Fetching the URLs admins type (category list URLs, webhooks) from the server.

The server sits inside the school network, so an admin's URL could reach machines nobody
outside may reach (the router's admin page, a printer, a database), and the errors shown
for it would map them: a port scan through the console. Hence:

* only public addresses are connected to, unless the node's ``fetch_allow`` lists the
  network (an internal list server, an alert receiver on the LAN). The check is made on
  the address actually connected to, after DNS, so a name that resolves inside, or is
  rebound there between two lookups, is caught as well as a literal address;
* list downloads follow redirects only on the host of the URL as configured (webhooks
  follow none);
* errors are in words of our own: a status code and its standard phrase, never what the
  other side sent back.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus

import aiohttp
from yarl import URL

from filterdns.config.model import IPNetwork

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

AddrInfo = tuple[int, int, int, str, tuple]


class FetchRefused(OSError):
    """This server may not fetch that URL; the message says why in a plain sentence."""


def permitted(address: str, allow: Sequence[IPNetwork]) -> bool:
    """Whether the server may connect to ``address``: a public one, or one in ``allow``."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global or any(ip in network for network in allow)


def _guarded_sockets(allow: Sequence[IPNetwork]) -> Callable[[AddrInfo], socket.socket]:
    def make_socket(addr_info: AddrInfo) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        if not permitted(sockaddr[0], allow):
            raise FetchRefused(f"{sockaddr[0]} is not a public address, and fetch_allow does not list its network")
        return socket.socket(family, kind, proto)

    return make_socket


def fetch_session(
    allow: Sequence[IPNetwork], *, timeout: float, headers: Mapping[str, str] | None = None
) -> aiohttp.ClientSession:
    """A client session that connects only where ``permitted`` says it may."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(socket_factory=_guarded_sockets(tuple(allow))),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers=dict(headers or {}),
    )


@asynccontextmanager
async def get_on_same_host(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET ``url``, following up to ``MAX_REDIRECTS`` redirects on its own host only."""
    start = target = URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        async with session.get(target, headers=headers, allow_redirects=False) as response:
            location = response.headers.get("Location") if response.status in _REDIRECTS else None
            if location is None:
                yield response
                return
        target = target.join(URL(location))
        if (target.host or "").lower() != (start.host or "").lower():
            raise FetchRefused(f"redirected to another host ({target.host}); use that address as the URL instead")
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")


def status_words(status: int) -> str:
    """``HTTP 404 Not Found``: the code and its standard phrase, not the server's own."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def failure_words(error: BaseException) -> str:
    """What went wrong with a fetch, for the console and the log: a refusal, a connection
    that failed (and how), a timeout; the error's own text only for our own exceptions."""
    if isinstance(error, aiohttp.ClientConnectorError):
        if isinstance(error.os_error, FetchRefused):
            return str(error.os_error)
        return f"cannot connect to {error.host}:{error.port}: {_os_words(error.os_error)}"
    if isinstance(error, aiohttp.ClientResponseError):
        return status_words(error.status)
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, aiohttp.InvalidURL):
        return f"{error.url} is not a valid URL"
    if isinstance(error, aiohttp.ClientError):
        return f"the connection failed ({type(error).__name__})"
    return str(error) or type(error).__name__


def _os_words(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return (error.strerror or str(error)).lower()
