"""The background jobs over the store: delivering the outbox (mail and webhooks), queueing
parents' weekly digests, raising safeguarding alerts, and deleting what is past retention.

They run on worker 0 of every node. Each pass of the first three first takes its lease in the
store ("outbox", "digest", "alerts"), so when several nodes share a store exactly one of them
does each job, and another takes over within a minute if it stops. Retention is idempotent and
runs on every node. None of them ever stops DNS: every job survives a failing store and tries
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from filterdns.alerts.evaluator import AlertEvaluator
from filterdns.config.model import Config
from filterdns.notify.delivery import OutboxDelivery
from filterdns.reports.digest_job import ChildrenAtHome, DigestJob
from filterdns.store import Store
from filterdns.store.outage import OutageLog

log = logging.getLogger("filterdns.service")

RETENTION_INTERVAL = 3600.0


class BackgroundJobs:
    """The jobs over one store; ``config`` gives the configuration in force (policy
    revisions and SIGHUP replace it)."""

    def __init__(self, store: Store, config: Callable[[], Config], *, children_at_home: ChildrenAtHome | None = None) -> None:
        self._store = store
        self._config = config
        self.outbox = OutboxDelivery(store, config().node.mail, fetch_allow=config().node.fetch_allow)
        self.digest = DigestJob(store, config, children_at_home=children_at_home)
        self.alerts = AlertEvaluator(store, config)

    def start(self) -> list[asyncio.Task]:
        """Start every job; cancel the tasks to stop them (each gives its lease back)."""
        return [
            asyncio.create_task(self.outbox.run_forever(), name="outbox delivery"),
            asyncio.create_task(self.digest.run_forever(), name="weekly digest"),
            asyncio.create_task(self.alerts.run_forever(), name="safeguarding alerts"),
            asyncio.create_task(self._enforce_retention_forever(), name="retention"),
        ]

    def config_changed(self) -> None:
        """After a reload: the digest and alert jobs read the configuration on every pass;
        the delivery keeps its mail settings until told."""
        self.outbox.mail = self._config().node.mail
        self.outbox.fetch_allow = self._config().node.fetch_allow

    async def _enforce_retention_forever(self) -> None:
        """Delete events, mail and alerts older than their retention, once an hour."""
        outage = OutageLog(log, self._store.outage)
        while True:
            try:
                deleted = await self._store.enforce_retention()
                outage.recovered("retention runs again")
                if any(deleted.values()):
                    log.info("retention: deleted %s", ", ".join(f"{n} {kind}" for kind, n in deleted.items() if n))
            except Exception as error:  # the store may be down; DNS goes on regardless
                outage.failed("retention could not run: %s", error)
            await asyncio.sleep(RETENTION_INTERVAL)
