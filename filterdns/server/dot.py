"""Stage 1 (DoT): DNS over TLS, RFC 7858, and who the client is from its TLS server name.

The framing is TCP's (``tcp.DnsTcpProtocol``, with ``transport="dot"``); only the TLS
context and the client's name are DoT's own. Android's Private DNS setting takes one host
name, so a school gives each pupil or device ``<id>.dns.school.example`` (with a wildcard
certificate for ``*.dns.school.example``), and the first label names them. The bare
``dns.school.example``, or any name outside it, names nobody: the client is then known by its
address as over UDP.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Callable
from weakref import WeakKeyDictionary

from filterdns.identity.roster import Identity
from filterdns.server.tls import server_context


def client_id_from_server_name(server_name: str | None, hostname: str) -> str:
    """The id in ``<id>.<hostname>``, or "" when the name carries none."""
    if not server_name or not hostname:
        return ""
    name = server_name.lower().rstrip(".")
    suffix = "." + hostname.lower().rstrip(".")
    if not name.endswith(suffix):
        return ""
    return name[: -len(suffix)].split(".", 1)[0]


class ServerNames:
    """Remembers each handshake's SNI until the connection asks who its client is."""

    def __init__(self, hostname: str, identify: Callable[[str], Identity]):
        self.hostname = hostname
        self._identify = identify
        self._names: WeakKeyDictionary[ssl.SSLObject, str] = WeakKeyDictionary()

    def context(self, cert: Path, key: Path) -> ssl.SSLContext:
        return server_context(cert, key, ("dot",), self._seen)

    def _seen(self, ssl_object: ssl.SSLObject, server_name: str | None) -> None:
        if server_name:
            self._names[ssl_object] = server_name

    def identity(self, transport: asyncio.BaseTransport) -> Identity | None:
        """The roster's identity for the client of ``transport`` (None: it named nobody)."""
        ssl_object = transport.get_extra_info("ssl_object")
        server_name = self._names.pop(ssl_object, None) if ssl_object is not None else None
        client_id = client_id_from_server_name(server_name, self.hostname)
        return self._identify(client_id) if client_id else None
