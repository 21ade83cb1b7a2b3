"""Stage 1 (TCP): DNS over TCP per RFC 7766.

Messages are length-prefixed; a client may pipeline many queries on one connection and
answers go back as each one is ready (out of order is allowed). A connection with nothing in
flight is closed after the idle timeout, and a cap on open connections keeps a misbehaving
client from exhausting file descriptors.

DNS over TLS (RFC 7858) is the same protocol inside TLS: the DoT listener uses these classes
with ``transport="dot"`` and a function that names the client from its TLS handshake.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Awaitable, Callable

from filterdns.identity.roster import Identity
from filterdns.resolver.pipeline import QueryPipeline

log = logging.getLogger("filterdns.server")

# A client that sends more than this many queries without reading answers is cut off.
MAX_IN_FLIGHT_PER_CONNECTION = 100


def send_at_once(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off: an answer is one small write that must not wait for the
    client's delayed ACK of the previous one (uvloop does this already, the standard loop
    not for TLS connections)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the connection is already gone; connection_lost follows


class TcpConnections:
    """Shared state of every TCP listener: the connection cap and the live connections."""

    def __init__(
        self,
        pipeline: QueryPipeline,
        idle_timeout: float,
        max_connections: int,
        max_per_client: int,
        *,
        transport: str = "tcp",
        identify: Callable[[asyncio.BaseTransport], Identity | None] | None = None,
    ):
        self.pipeline = pipeline
        self.transport = transport
        # Who a connection's client said it is (DoT: from the TLS server name), or None.
        self.identify = identify
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.open: set[DnsTcpProtocol] = set()
        self.per_client: dict[str, int] = {}
        self.rejected = 0

    def admit(self, conn: "DnsTcpProtocol", peer: str) -> bool:
        """Take a new connection unless the server or this client is at its cap."""
        if len(self.open) >= self.max_connections or self.per_client.get(peer, 0) >= self.max_per_client:
            self.rejected += 1
            return False
        self.open.add(conn)
        self.per_client[peer] = self.per_client.get(peer, 0) + 1
        return True

    def release(self, conn: "DnsTcpProtocol", peer: str) -> None:
        if conn in self.open:
            self.open.discard(conn)
            remaining = self.per_client.get(peer, 1) - 1
            if remaining > 0:
                self.per_client[peer] = remaining
            else:
                self.per_client.pop(peer, None)

    def protocol(self) -> "DnsTcpProtocol":
        return DnsTcpProtocol(self)

    async def drain(self, timeout: float) -> None:
        pending = {task for conn in self.open for task in conn.pending}
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()


class DnsTcpProtocol(asyncio.Protocol):
    def __init__(self, connections: TcpConnections):
        self._connections = connections
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._idle_timer: asyncio.TimerHandle | None = None
        self._identity: Identity | None = None
        self.pending: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if peer else ""
        if not self._connections.admit(self, self._peer):
            transport.close()
            return
        send_at_once(transport)
        if self._connections.identify is not None:
            self._identity = self._connections.identify(transport)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.release(self, self._peer)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for task in self.pending:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        buffer = self._buffer
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            self._handle(message)
        if len(buffer) > 2 + 65535:
            self.close()
            return
        self._arm_idle_timer()

    def _handle(self, message: bytes) -> None:
        try:
            result = self._connections.pipeline.answer(message, self._peer, self._connections.transport, self._identity)
        except Exception:
            log.exception("unexpected error answering a %s query from %s", self._connections.transport, self._peer)
            return
        if result is None:
            return
        if result.__class__ is bytes:
            self._write(result)
            return
        if len(self.pending) >= MAX_IN_FLIGHT_PER_CONNECTION:
            log.info("closing TCP connection from %s: too many queries in flight", self._peer)
            result.close()  # the coroutine never started; close it to avoid a warning
            self.close()
            return
        task = asyncio.get_running_loop().create_task(self._write_later(result))
        self.pending.add(task)
        task.add_done_callback(self._task_done)

    async def _write_later(self, result: Awaitable[bytes | None]) -> None:
        reply = await result
        if reply is not None:
            self._write(reply)

    def _task_done(self, task: asyncio.Task) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("unexpected error answering a TCP query from %s", self._peer, exc_info=task.exception())
        self._arm_idle_timer()

    def _write(self, reply: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(len(reply).to_bytes(2, "big") + reply)

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self._connections.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        if self.pending:
            self._arm_idle_timer()
        else:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
