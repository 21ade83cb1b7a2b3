"""``StoreSink``: the recorder's way into the store, built to outlive a failing database.

While the store works, each batch the recorder hands over is written at once, and the
recorder waits for it (so batches stay small and the writer never holds the core long).
When a write fails — database locked, read-only, full, moved away, PostgreSQL down or not
answering within the store's deadline — the store counts as down: the sink keeps events in
memory (up to a bound, counting what it has to drop beyond it), logs one WARNING, and tries
the oldest events again every ``probe_interval`` seconds. The first write that works logs
one INFO line, and the rest of the backlog goes in large chunks straight away. The
recorder never waits on a failing store for more than ``HANDOVER_WAIT`` and never sees an
exception: DNS answers must not depend on the database.

Its state (``down``, ``last_error``, ``pending``, ``dropped``) lives in memory, so health
views and metrics read it without touching the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from filterdns.resolver.events import QueryEvent
from filterdns.store.base import StoreError, error_text, forget_outcome
from filterdns.store.store import Store

log = logging.getLogger(__name__)

# The longest the recorder waits for one batch to be written. A store that answers takes a
# batch in milliseconds; one that hangs must not stop the recorder from taking events in
# (its own queue would fill and drop them while the sink's buffer sat empty).
HANDOVER_WAIT = 0.5
# A write that has not answered for this many deadlines is cancelled and its events written
# again: a server gone for good (not just stopped) may never answer, and the events must
# not wait for it forever. Only such a write, if it did commit after all, is stored twice.
GIVE_UP_DEADLINES = 6


class StoreSink:
    """An ``EventSink`` writing to a ``Store``.

    For monitoring: ``down`` (the store refuses or does not answer; since ``down_since``),
    ``pending`` (events waiting for the store), ``dropped`` (events lost because the buffer
    was full or the store was still down at shutdown), ``failures`` (failed write attempts)
    and ``last_error`` (what the store said, until it works again).
    The sink does not own the store: closing the sink leaves the store open.
    """

    name = "store"

    def __init__(
        self,
        store: Store,
        *,
        buffer_limit: int = 50_000,
        chunk_size: int = 5_000,
        probe_interval: float = 1.0,
        deadline: float = 10.0,
    ) -> None:
        if buffer_limit < 1 or chunk_size < 1:
            raise ValueError("buffer_limit and chunk_size must be positive")
        self.store = store
        self._limit = buffer_limit
        self._chunk_size = chunk_size
        self._probe_interval = probe_interval
        self._deadline = deadline
        # The write of the oldest events still to answer: (write, how many events, started).
        self._in_flight: tuple[asyncio.Future[None], int, float] | None = None
        self._buffer: deque[QueryEvent] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._tried = asyncio.Event()  # the writer's first attempt is over (or it ended)
        self._wake = asyncio.Event()
        self._closing = False
        self._overflowing = False  # the buffer overflowed during this outage (logged once)
        self._outage_dropped = 0  # ``dropped`` when the current outage began
        self.down = False
        self.down_since: float | None = None
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None

    @classmethod
    def for_store(cls, store: Store) -> StoreSink:
        """A sink tuned by the store's own settings."""
        s = store.settings
        return cls(
            store, buffer_limit=s.buffer_limit, chunk_size=s.insert_chunk, probe_interval=s.probe_interval,
            deadline=s.call_timeout,
        )

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def failing(self) -> bool:
        """True while the store refuses events and the sink keeps trying."""
        return self.down

    def health(self) -> dict[str, Any]:
        """The store's state as the last write found it, for health views: from memory, so
        it answers at once even while the store hangs."""
        return {
            "ok": not self.down,
            "detail": self.last_error or "",
            "since": self.down_since,
            "location": self.store.location,
            "buffered": self.pending,
            "dropped": self.dropped,
        }

    async def write_batch(self, events: Sequence[QueryEvent]) -> None:
        """Queue ``events`` and, unless a write is under way already, write them now,
        waiting at most ``HANDOVER_WAIT`` for the store."""
        if self._closing:
            self.dropped += len(events)
            return
        self._enqueue(events)
        if self._writer is not None:  # writing, or waiting for the store to come back
            return
        self._tried.clear()
        self._writer = asyncio.create_task(self._write_all(), name="filterdns-store-writer")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), HANDOVER_WAIT)

    async def close(self) -> None:
        """Make a last attempt to write what is buffered; count the rest as dropped."""
        self._closing = True
        if self._writer is not None:
            self._wake.set()  # a writer waiting to try again makes its last attempt now
            await self._writer
        elif self._buffer:
            await self._drain()
        if self._buffer:
            log.error(
                "store unavailable at shutdown (%s): %d query events not stored",
                self.last_error, len(self._buffer),
            )
            self.dropped += len(self._buffer)
            self._buffer.clear()

    def _enqueue(self, events: Sequence[QueryEvent]) -> None:
        room = self._limit - len(self._buffer)
        if len(events) > room:
            if not self._overflowing:
                self._overflowing = True
                log.warning("store buffer full (%d events): dropping query events", self._limit)
            self.dropped += len(events) - room
            events = events[:room]
        self._buffer.extend(events)

    async def _write_all(self) -> None:
        """Write until the buffer is empty, trying again every ``probe_interval`` while the
        store is down; ``close()`` cuts a wait short for one last attempt."""
        try:
            while not await self._drain():
                self._tried.set()
                if self._closing:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._probe_interval)
        finally:
            self._writer = None
            self._tried.set()

    async def _drain(self) -> bool:
        """Write buffered events, oldest first, in chunks; True once all are written."""
        buffer = self._buffer
        while buffer:
            try:
                written = await self._write_oldest()
            except Exception as exc:
                self._went_down(exc)
                return False
            for _ in range(written):
                buffer.popleft()
            if self.down:
                self._came_back()
        self._overflowing = False
        return True

    async def _write_oldest(self) -> int:
        """Write the oldest chunk of the buffer; how many events it held. Waits at most the
        deadline, without cancelling the write: a write that does not answer in time is
        kept, and the next attempt waits for its outcome rather than writing the same
        events again (see ``Store.insert_events``)."""
        if self._in_flight is None:
            chunk = list(itertools.islice(self._buffer, self._chunk_size))
            write = asyncio.ensure_future(self.store.insert_events(chunk))
            write.add_done_callback(forget_outcome)  # its outcome is read below, if at all
            self._in_flight = (write, len(chunk), time.monotonic())
        write, count, started = self._in_flight
        done, _ = await asyncio.wait((write,), timeout=self._deadline)
        if not done:
            if time.monotonic() - started < GIVE_UP_DEADLINES * self._deadline:
                raise StoreError(f"no answer within {self._deadline:g} s")
            write.cancel()
            self._in_flight = None
            raise StoreError(f"no answer for {GIVE_UP_DEADLINES * self._deadline:g} s; writing those events again")
        self._in_flight = None
        write.result()
        return count

    def _went_down(self, exc: Exception) -> None:
        """Count a failed attempt; log only the first of an outage (attempts are many)."""
        self.failures += 1
        self.last_error = error_text(exc)
        if self.down:
            return
        self.down = True
        self.down_since = time.time()
        self._outage_dropped = self.dropped
        log.log(
            logging.WARNING if self.store.outage.claim(self) else logging.DEBUG,
            "store %s is not taking query events (%s): keeping up to %d in memory and trying "
            "again every %g s",
            self.store.location, self.last_error, self._limit, self._probe_interval,
            exc_info=not isinstance(exc, StoreError),
        )

    def _came_back(self) -> None:
        """The first write after an outage worked: say so once, and clear the fault."""
        assert self.down_since is not None
        log.log(
            logging.INFO if self.store.outage.release(self) else logging.DEBUG,
            "store %s takes query events again after %.0f s; writing the %d still buffered "
            "(%d dropped meanwhile)",
            self.store.location, time.time() - self.down_since, len(self._buffer),
            self.dropped - self._outage_dropped,
        )
        self.down = False
        self.down_since = None
        self.last_error = None
