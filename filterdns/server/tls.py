"""TLS for the encrypted DNS listeners (DoH, DoT): one server context per certificate."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Callable


def server_context(
    cert: Path, key: Path, alpn: tuple[str, ...], on_server_name: Callable[[ssl.SSLObject, str | None], None] | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ server context offering ``alpn`` (``h2``/``http/1.1`` for DoH, ``dot`` for
    DoT, RFC 7858 and RFC 8310). ``on_server_name`` sees each client's SNI during the
    handshake: DoT clients name themselves there (``<id>.dns.school.example``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(list(alpn))
    if on_server_name is not None:

        def callback(ssl_object: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
            on_server_name(ssl_object, server_name)

        context.sni_callback = callback
    return context
