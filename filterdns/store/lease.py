"""District-wide background jobs: started on every node, done by the one holding a lease.

The outbox delivery, the weekly digests and the safeguarding alerts each run
``run_forever`` on worker 0 of every node sharing a store. Each pass first takes, renews or
takes over (once the holder stopped renewing for ``ttl`` seconds) the job's lease in the
store, and does its work only if this node holds it: exactly one node does each job, and
another takes over if it stops.

The loop must neither stop nor stop DNS: a store outage (expected now and then) is logged
once per streak, any other error (a bug) with its traceback each time, and the next pass
tries again. Cancelling the task ends it and gives the lease back, so that another node can
take over at once rather than when the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from filterdns.store.base import StoreError
from filterdns.store.store import Store
from filterdns.store.outage import OutageLog

log = logging.getLogger(__name__)


class Lease:
    """This node's hold on the lease ``name``; ``held``: whether the last ``take`` got it."""

    __slots__ = ("held", "name", "store", "ttl")

    def __init__(self, store: Store, name: str, ttl: float) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.held = False

    async def take(self, now: float | None = None) -> bool:
        """Take, renew or take over the lease for ``ttl`` seconds from ``now``; True if this
        node holds it. Store errors propagate (``held`` then stays as it was)."""
        self.held = await self.store.acquire_lease(self.name, ttl=self.ttl, now=now)
        return self.held

    async def release(self) -> None:
        """Give the lease back if this node may hold it. Never raises: a lease that cannot
        be given back runs out by itself after ``ttl``."""
        if not self.held:
            return
        self.held = False
        try:
            await self.store.release_lease(self.name)
        except Exception:  # at shutdown: nothing left to do about it
            log.debug("could not give the %s lease back; it runs out by itself", self.name, exc_info=True)


class LeasedJob(ABC):
    """Base of a district-wide job: ``run_forever`` calls ``_run_pass`` every ``interval``
    seconds (``_pause`` may wake it sooner). A pass takes ``lease`` first and does nothing
    if another node holds it. ``what`` names the job in the lines it writes to ``log``."""

    def __init__(
        self, store: Store, lease: str, *, ttl: float, interval: float, log: logging.Logger, what: str
    ) -> None:
        self.store = store
        self.lease = Lease(store, lease, ttl)
        self.interval = interval
        self.log = log
        self._what = what
        self._outage = OutageLog(log, store.outage)

    async def run_forever(self) -> None:
        """Pass until cancelled, then give the lease back. Never raises (but for the cancel)."""
        try:
            while True:
                again = False
                try:
                    again = await self._run_pass()
                    self._outage.recovered("%s: the store works again", self._what)
                except StoreError as error:
                    self._outage.failed("%s paused: the store failed (%s); trying again every %g s",
                                        self._what, error, self.interval)  # fmt: skip
                except Exception:  # a bug: say so, and try again at the next pass
                    self.log.exception("%s: a pass failed", self._what)
                if not again:
                    await self._pause()
        finally:
            await self.lease.release()

    @abstractmethod
    async def _run_pass(self) -> bool:
        """One pass of ``run_forever``; True when more work is due at once (no pause)."""

    async def _pause(self) -> None:
        """Wait until the next pass is due."""
        await asyncio.sleep(self.interval)
