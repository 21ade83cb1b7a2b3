"""Stage 1 (UDP): receive datagrams, hand them to the pipeline, send the answers.

The socket is read in batches from a reader callback instead of through asyncio's
DatagramProtocol: measured here, one datagram per event-loop turn costs about 30 µs a query
on the default loop against about 8 µs for a batched read, and the batch works the same on
uvloop. Answers that are ready at once (blocks, cache hits) are sent from the same callback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Awaitable

from filterdns.resolver.pipeline import QueryPipeline

log = logging.getLogger("filterdns.server")

# Datagrams read per wake-up: enough to drain a burst, few enough to let TCP and timers run.
BATCH = 64
MAX_DATAGRAM = 65535


class UdpListener:
    def __init__(self, sock: socket.socket, pipeline: QueryPipeline):
        self._sock = sock
        self._pipeline = pipeline
        self._pending: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.send_errors = 0

    @property
    def address(self) -> tuple:
        return self._sock.getsockname()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def stop_reading(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())

    async def drain(self, timeout: float) -> None:
        """Wait for queries already sent upstream, so SIGTERM loses none of them."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)

    def close(self) -> None:
        self.stop_reading()
        for task in self._pending:
            task.cancel()
        self._sock.close()

    def _on_readable(self) -> None:
        sock = self._sock
        answer = self._pipeline.answer
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. ICMP port unreachable reported on Linux
                log.debug("UDP receive error: %s", error)
                return
            try:
                result = answer(data, addr[0], "udp")
            except Exception:
                # The pipeline answers every error itself; reaching here is a bug, and one
                # bad packet must still never stop the listener.
                log.exception("unexpected error answering a UDP query from %s", addr[0])
                continue
            if result is None:
                continue
            if result.__class__ is bytes:
                self._send(result, addr)
            else:
                task = self._loop.create_task(self._send_later(result, addr))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def _send_later(self, result: Awaitable[bytes | None], addr: tuple) -> None:
        try:
            reply = await result
        except Exception:
            log.exception("unexpected error answering a UDP query from %s", addr[0])
            return
        if reply is not None:
            self._send(reply, addr)

    def _send(self, reply: bytes, addr: tuple) -> None:
        try:
            self._sock.sendto(reply, addr)
        except OSError:
            # A full send buffer or an unreachable client: the client will retry.
            self.send_errors += 1
