"""``StoreSink``: the recorder's way into the store, built to outlive a failing database.

While the store works, each batch the recorder hands over is inserted at once. When an
insert fails (database locked, read-only or deleted file, full disk, PostgreSQL down),
the sink keeps the events in memory — up to a bound, counting what it has to drop beyond
it — and a background task retries with exponential backoff until the store takes them,
oldest first. The recorder is never made to wait on retries and never sees an exception:
DNS answers must not depend on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Sequence

from filterdns.resolver.events import QueryEvent
from filterdns.store.base import StoreError
from filterdns.store.store import Store

log = logging.getLogger(__name__)


class StoreSink:
    """An ``EventSink`` writing to a ``Store``.

    For monitoring: ``pending`` (events waiting for the store), ``dropped`` (events lost
    because the buffer was full or the store was still down at shutdown), ``failures``
    (failed insert attempts) and ``last_error`` (text of the latest failure).
    The sink does not own the store: closing the sink leaves the store open.
    """

    name = "store"

    def __init__(
        self,
        store: Store,
        *,
        buffer_limit: int = 50_000,
        chunk_size: int = 5_000,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        if buffer_limit < 1 or chunk_size < 1:
            raise ValueError("buffer_limit and chunk_size must be positive")
        self.store = store
        self._limit = buffer_limit
        self._chunk_size = chunk_size
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._buffer: deque[QueryEvent] = deque()
        self._retry_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._outage_failures = 0  # failed attempts since the last success
        self._outage_dropped = 0  # ``dropped`` when the current outage began
        self._overflowing = False  # the buffer overflowed during this outage (logged once)
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None

    @classmethod
    def for_store(cls, store: Store) -> StoreSink:
        """A sink tuned by the store's own settings."""
        s = store.settings
        return cls(
            store,
            buffer_limit=s.buffer_limit,
            chunk_size=s.insert_chunk,
            retry_initial=s.retry_initial,
            retry_max=s.retry_max,
        )

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def failing(self) -> bool:
        """True while the store refuses events and the sink is retrying."""
        return self._retry_task is not None

    async def write_batch(self, events: Sequence[QueryEvent]) -> None:
        """Queue ``events`` and, unless the store is known to be failing, write them now."""
        if self._closing:
            self.dropped += len(events)
            return
        self._enqueue(events)
        if self._retry_task is None and not await self._drain():
            self._retry_task = asyncio.create_task(self._retry(), name="filterdns-store-retry")

    async def close(self) -> None:
        """Make a last attempt to write what is buffered; count the rest as dropped."""
        self._closing = True
        if self._retry_task is not None:
            self._wake.set()  # the retry task makes the last attempt and ends
            await self._retry_task
        else:
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

    async def _drain(self) -> bool:
        """Write buffered events, oldest first, in chunks; True once all are written."""
        buffer = self._buffer
        while buffer:
            chunk = list(itertools.islice(buffer, self._chunk_size))
            try:
                await self.store.insert_events(chunk)
            except Exception as exc:
                self._note_failure(exc)
                return False
            for _ in chunk:
                buffer.popleft()
        if self._outage_failures:
            log.warning(
                "store writes work again after %d failed attempts; %d query events dropped meanwhile",
                self._outage_failures, self.dropped - self._outage_dropped,
            )
            self._outage_failures = 0
        self._overflowing = False
        return True

    def _note_failure(self, exc: Exception) -> None:
        """Count a failed attempt; log only the first of an outage (retries are many)."""
        self.failures += 1
        self.last_error = str(exc) or type(exc).__name__
        if not self._outage_failures:
            self._outage_dropped = self.dropped
            log.warning(
                "store write failed, buffering up to %d query events and retrying: %s",
                self._limit, self.last_error, exc_info=not isinstance(exc, StoreError),
            )
        self._outage_failures += 1

    async def _retry(self) -> None:
        """Retry with backoff until the buffer is written; ``close()`` cuts the wait short
        for one last attempt."""
        delay = self._retry_initial
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                if await self._drain() or self._closing:
                    return
                delay = min(delay * 2, self._retry_max)
        finally:
            self._retry_task = None
