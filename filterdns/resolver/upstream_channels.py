"""The sockets and connections the upstream pool sends on, and how replies find their query.

Split from ``upstream`` (which decides where a query goes and keeps each server's health):
this is the byte-level part of the hot path. Every reply is matched to the query waiting for
it by ID and question; anything else is counted as a mismatch and dropped.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Protocol

from filterdns.config.model import UpstreamServerConfig

_FLAG_QR = 0x80  # in the third header byte
_MAX_MESSAGE = 65535
# UDP timeouts are kept in slots of this many seconds, one loop timer per slot.
DEADLINE_SLOT = 0.01

# (lower-cased wire-format question name, type and class bytes)
Question = tuple[bytes, bytes]


class ChannelOwner(Protocol):
    """The upstream server a channel belongs to: where to connect, whom to tell of errors."""

    config: UpstreamServerConfig

    def report_error(self, kind: str) -> None: ...


class AttemptFailed(Exception):
    """One server did not give a usable reply; ``kind`` as in ``UpstreamObserver``."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class Channel:
    """Queries in flight on one socket or connection, keyed by ID, and the reply check.

    ``waiting[id] = (future, question, deadline slot)``. Whoever settles a query removes
    its entry: the reply, the timeout or a connection failure. A late or duplicate reply
    then finds no entry and is counted as a mismatch.
    """

    __slots__ = ("server", "waiting")

    def __init__(self, server: ChannelOwner):
        self.server = server
        self.waiting: dict[int, tuple[asyncio.Future[bytes], Question, int]] = {}

    def new_id(self, getrandbits: Callable[[int], int]) -> int:
        qid = getrandbits(16)
        while qid in self.waiting:
            qid = getrandbits(16)
        return qid

    def deliver(self, data: bytes) -> None:
        """Wake the query this reply answers; anything else is counted and dropped."""
        if len(data) >= 12:
            qid = (data[0] << 8) | data[1]
            entry = self.waiting.get(qid)
            if entry is not None:
                future, (name, type_class), _ = entry
                end = 12 + len(name)
                if (
                    data[2] & _FLAG_QR
                    and data[4] == 0
                    and data[5] == 1
                    and data[12:end].lower() == name
                    and data[end : end + 4] == type_class
                ):
                    del self.waiting[qid]
                    if not future.done():  # the waiting coroutine may have been cancelled
                        future.set_result(data)
                    return
        self.server.report_error("mismatch")

    def forget(self, qid: int, future: asyncio.Future[bytes]) -> None:
        """Drop the entry for ``qid`` if it still belongs to ``future`` (IDs are reused)."""
        entry = self.waiting.get(qid)
        if entry is not None and entry[0] is future:
            del self.waiting[qid]

    def fail_all(self, exc: BaseException) -> None:
        for future, _, _ in self.waiting.values():
            if not future.done():
                future.set_exception(exc)
        self.waiting.clear()


class UdpSocket(Channel):
    """A non-blocking UDP socket connected to one upstream, read via ``loop.add_reader``."""

    __slots__ = ("loop", "sock", "sent", "born", "serial")

    def __init__(
        self, server: ChannelOwner, loop: asyncio.AbstractEventLoop, now: float, serial: int
    ):
        super().__init__(server)
        endpoint = server.config.endpoint
        family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # connect() makes the kernel pick a random ephemeral source port and drop
            # datagrams from anyone but the upstream.
            sock.connect((endpoint.host, endpoint.port))
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self.loop = loop
        self.sock = sock
        self.sent = 0
        self.born = now
        self.serial = serial  # names the socket in UdpSockets

    def _readable(self) -> None:
        try:
            data = self.sock.recv(_MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            # An ICMP error (port unreachable, ...) on a connected socket: the upstream
            # is not there, so nothing waiting on this socket will be answered.
            self.fail_all(AttemptFailed("network"))
            return
        self.deliver(data)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        self.fail_all(AttemptFailed("network"))


class UdpSockets:
    """All UDP sockets of a pool, by serial number, and the timeouts of their queries.

    Timeouts are kept in ``DEADLINE_SLOT`` slots: one loop timer per slot instead of one
    per query, which was most of the cost of a timer on the hot path. A query may time out
    up to one slot early, never late. Slots hold plain ints (socket serial << 16 | ID), not
    references: a second's worth of tuples holding futures kept the garbage collector busy.
    """

    __slots__ = ("loop", "sockets", "slots", "timers", "next_serial")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.sockets: dict[int, UdpSocket] = {}
        self.slots: dict[int, list[int]] = {}
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.next_serial = 0

    def new_socket(self, server: ChannelOwner, now: float) -> UdpSocket:
        self.next_serial += 1
        sock = UdpSocket(server, self.loop, now, self.next_serial)
        self.sockets[sock.serial] = sock
        return sock

    def close_socket(self, sock: UdpSocket) -> None:
        self.sockets.pop(sock.serial, None)
        sock.close()

    def deadline_slot(self, deadline: float, sock: UdpSocket, qid: int) -> int:
        """Register the query's deadline; returns the slot to keep in its waiting entry."""
        slot = int(deadline / DEADLINE_SLOT)
        keys = self.slots.get(slot)
        if keys is None:
            keys = self.slots[slot] = []
            self.timers[slot] = self.loop.call_at(slot * DEADLINE_SLOT, self._expire, slot)
        keys.append(sock.serial << 16 | qid)
        return slot

    def _expire(self, slot: int) -> None:
        del self.timers[slot]
        for key in self.slots.pop(slot):
            sock = self.sockets.get(key >> 16)
            if sock is None:
                continue
            qid = key & 0xFFFF
            entry = sock.waiting.get(qid)
            # The slot check skips a newer query that reused the ID. Entries of cancelled
            # queries (future already done) are cleared here too.
            if entry is not None and entry[2] == slot:
                del sock.waiting[qid]
                if not entry[0].done():
                    entry[0].set_exception(AttemptFailed("timeout"))

    def close(self, exc: BaseException) -> None:
        """Close every socket, replaced ones included; their waiting queries get ``exc``."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.slots.clear()
        for sock in self.sockets.values():
            sock.fail_all(exc)
            sock.close()
        self.sockets.clear()


class TcpChannel(Channel):
    """One persistent, pipelined TCP connection (RFC 7766), opened on first use.

    Used for every query to a TCP-only upstream and for retries of truncated UDP replies.
    """

    __slots__ = ("writer", "reader_task", "lock")

    def __init__(self, server: ChannelOwner):
        super().__init__(server)
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    async def send(self, message: bytes) -> bool:
        """Send on the open connection, opening one if needed; True if it was already open."""
        reused = True
        async with self.lock:
            if self.writer is None:
                endpoint = self.server.config.endpoint
                reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
                self.writer = writer
                self.reader_task = asyncio.create_task(self._read(reader, writer))
                reused = False
        self.writer.write(len(message).to_bytes(2, "big") + message)
        return reused

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                self.deliver(await reader.readexactly(size))
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            if self.writer is writer:
                self.writer = None
            writer.close()
            self.fail_all(AttemptFailed("tcp"))

    async def close(self) -> None:
        if self.reader_task is not None:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)
