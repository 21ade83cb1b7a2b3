"""Stage 1 (DoH): DNS over HTTPS, RFC 8484, on HTTP/2 and HTTP/1.1.

One listener serves both protocols: after the TLS handshake, ALPN says which one the client
chose (``h2`` for browsers' and ChromeOS's DoH clients, ``http/1.1`` for the rest). Without
TLS (a reverse proxy in front does it) the first bytes tell: an HTTP/2 connection opens with
``PRI``. The HTTP/2 framing is the ``h2`` library's (``doh_h2``), HTTP/1.1 is ``h11``'s; the
rules of DoH itself live in ``doh_request`` and the DNS work is the same ``QueryPipeline``
call as for UDP, so a cache hit or a block is answered within the ``data_received`` call
that brought the request.

Protection: connections per client address are capped like TCP's (``TcpConnections``), each
connection has a cap on queries waiting for an upstream, and the HTTP/2 side caps concurrent
streams and drops a connection that keeps resetting streams (the 2023 "rapid reset" attack).
Plain HTTP is accepted only from ``trusted_proxies``, and only they may say who the real
client is (``X-Forwarded-For``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Awaitable, Callable, Protocol

import h11

from filterdns.identity.roster import Identity
from filterdns.resolver.access import NetworkSet
from filterdns.resolver.pipeline import QueryPipeline
from filterdns.server.doh_request import (
    MAX_DNS_MESSAGE,
    Headers,
    HttpError,
    Reply,
    decode_request,
    dns_response_headers,
    reply_error,
)
from filterdns.server.tcp import TcpConnections, send_at_once

log = logging.getLogger("filterdns.server")

# Queries of one connection that may wait for an upstream at once; more get 503.
MAX_PENDING_PER_CONNECTION = 100
H2_PREFACE_START = b"PRI"
MAX_HEADER_BYTES = 16384


class Session(Protocol):
    """One HTTP protocol's side of a connection (``H1Session`` or ``doh_h2.H2Session``)."""

    def data_received(self, data: bytes) -> None: ...


class DohServer:
    """Shared state of every DoH listener."""

    def __init__(
        self,
        pipeline: QueryPipeline,
        identify: Callable[[str], Identity],
        connections: TcpConnections,
        *,
        tls: bool,
        trusted_proxies: NetworkSet,
    ):
        self.pipeline = pipeline
        self.identify = identify
        self.connections = connections
        self.tls = tls
        self.trusted_proxies = trusted_proxies
        self.refused_plain = 0

    def protocol(self) -> "DohConnection":
        return DohConnection(self)


class DohConnection(asyncio.Protocol):
    """One client connection: admission, idle timeout, and the DoH exchange itself."""

    def __init__(self, server: DohServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.pending: set[asyncio.Task] = set()
        self._session: Session | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        if not self.server.tls and self.peer not in self.server.trusted_proxies:
            # Plain HTTP would let anyone on the path read and forge answers: only a proxy
            # that terminates TLS for us may use it.
            self.server.refused_plain += 1
            transport.close()
            return
        if not self.server.connections.admit(self, self.peer):
            transport.close()
            return
        send_at_once(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._session = self._new_session(ssl_object.selected_alpn_protocol() == "h2")
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.release(self, self.peer)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for task in self.pending:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if self._session is None:
            if len(data) < len(H2_PREFACE_START) and H2_PREFACE_START.startswith(data):
                self.close()  # a client dribbling the preface byte by byte is not worth it
                return
            self._session = self._new_session(data.startswith(H2_PREFACE_START))
        self._session.data_received(data)
        self._arm_idle_timer()

    def _new_session(self, http2: bool) -> Session:
        if http2:
            from filterdns.server.doh_h2 import H2Session

            return H2Session(self)
        return H1Session(self)

    # -- the DoH exchange ------------------------------------------------------------------

    def exchange(
        self, method: bytes, target: bytes, headers: Headers, body: bytes, reply: Reply
    ) -> asyncio.Task | None:
        """Answer one request through ``reply``: at once when the pipeline can, otherwise
        from the task returned (which the caller may cancel when the client gives up)."""
        content_type = forwarded = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"x-forwarded-for":
                forwarded = value
        try:
            request = decode_request(method, target, content_type, body)
        except HttpError as error:
            reply_error(reply, error)
            return None
        client = self._client_address(forwarded)
        identity = self.server.identify(request.client_id) if request.client_id else None
        try:
            result = self.server.pipeline.answer(request.message, client, "doh", identity)
        except Exception:
            log.exception("unexpected error answering a DoH query from %s", client)
            reply_error(reply, HttpError(500, "The query could not be answered."))
            return None
        if result is None:
            reply_error(reply, HttpError(400, "The request does not carry a DNS query."))
        elif result.__class__ is bytes:
            reply(200, dns_response_headers(result), result)  # type: ignore[arg-type]
        elif len(self.pending) >= MAX_PENDING_PER_CONNECTION:
            result.close()  # type: ignore[union-attr]  # never started
            reply_error(reply, HttpError(503, "Too many queries at once on this connection."))
        else:
            task = asyncio.get_running_loop().create_task(self._reply_later(result, reply))  # type: ignore[arg-type]
            self.pending.add(task)
            task.add_done_callback(self._task_done)
            return task
        return None

    async def _reply_later(self, result: Awaitable[bytes | None], reply: Reply) -> None:
        answer = await result
        if answer is None:
            reply_error(reply, HttpError(400, "The request does not carry a DNS query."))
        else:
            reply(200, dns_response_headers(answer), answer)

    def _task_done(self, task: asyncio.Task) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("unexpected error answering a DoH query from %s", self.peer, exc_info=task.exception())
        self._arm_idle_timer()

    def _client_address(self, forwarded: bytes | None) -> str:
        """The peer, or for a trusted proxy the address it appended last to X-Forwarded-For."""
        if forwarded is None or self.peer not in self.server.trusted_proxies:
            return self.peer
        last = forwarded.rsplit(b",", 1)[-1].strip().decode("ascii", "replace")
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return self.peer

    # -- connection upkeep -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.server.connections.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        if self.pending:
            self._arm_idle_timer()
        else:
            self.close()


class H1Session:
    """HTTP/1.1 via ``h11``. Requests on one connection are answered in order (RFC 9112
    pipelining): while one waits for an upstream, the next stay in h11's buffer."""

    def __init__(self, connection: DohConnection):
        self._connection = connection
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._process()

    def _process(self) -> None:
        while not self._busy:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                self._fail(error.error_status_hint, "The request is not valid HTTP/1.1.")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body.clear()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > MAX_DNS_MESSAGE:
                    self._fail(413, "The request body is larger than any DNS message.")
                    return
            elif isinstance(event, h11.EndOfMessage) and self._request is not None:
                self._busy = True
                request = self._request
                self._connection.exchange(request.method, request.target, list(request.headers), bytes(self._body), self._reply)
            elif isinstance(event, h11.ConnectionClosed):
                self._connection.close()
                return

    def _reply(self, status: int, headers: Headers, body: bytes) -> None:
        h11_connection = self._h11
        if h11_connection.our_state is not h11.SEND_RESPONSE:
            return
        try:
            data = h11_connection.send(h11.Response(status_code=status, headers=headers))
            data += h11_connection.send(h11.Data(data=body)) + h11_connection.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self._connection.close()
            return
        self._connection.write(data)
        if h11_connection.our_state is h11.MUST_CLOSE or h11_connection.their_state is h11.MUST_CLOSE:
            self._connection.close()
            return
        try:
            h11_connection.start_next_cycle()
        except h11.LocalProtocolError:
            # The client has not finished sending this request (an error was answered early).
            self._connection.close()
            return
        self._busy = False
        self._request = None
        self._process()

    def _fail(self, status: int, message: str) -> None:
        """Answer a broken request if HTTP still allows it, then close."""
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = (message + "\n").encode()
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            try:
                self._connection.write(
                    self._h11.send(h11.Response(status_code=status, headers=headers))
                    + self._h11.send(h11.Data(data=body))
                    + self._h11.send(h11.EndOfMessage())
                )
            except h11.LocalProtocolError:
                pass
        self._connection.close()
