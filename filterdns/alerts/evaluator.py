"""Raises safeguarding alerts from the query log: one alert per burst of matching blocked
lookups by one subject (a device, or a whole group) under one rule.

A burst starts when ``threshold`` attempts fall within ``window`` seconds of each other
(first to last) and goes on while further attempts keep coming within ``window`` of the one
before; once the subject has been quiet for longer than a whole window, the next threshold
crossing is a new alert. The attempts after the crossing extend the alert (its last time,
count and categories) but raise nothing new.

Every decision is made from the store, never from memory, so a restart or another node
taking the ``alerts`` lease over neither forgets an alert nor raises it twice:

* lookups already accounted for are those up to the subject's latest alert's last attempt;
  each pass reads only the later ("uncovered") ones, over the last ``LOOKBACK`` windows;
* the resolver writes events in batches about a second apart, so a pass only looks at
  lookups older than ``settle`` seconds: by then they are all in the store, and a late
  batch cannot split one burst into two alerts;
* ``Store.create_alert`` refuses an alert that an existing one already reaches, and
  ``Store.extend_alert`` never counts the same attempts twice;
* notifications are queued under dedup keys, so queueing them again is harmless, which is
  what a pass does for the last day's alerts after a restart or a failed pass (a crash
  between recording an alert and queueing its mail would otherwise lose the mail).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from filterdns.alerts.notices import enqueue_notices
from filterdns.config.model import AlertRule, Config
from filterdns.store import DAY, Alert, Store
from filterdns.store.alerts import AlertAttempt
from filterdns.store.lease import LeasedJob

log = logging.getLogger("filterdns.alerts")

LEASE = "alerts"
ACTOR = "alerts"  # the audit log's actor for raised alerts
# How far back a pass reads uncovered lookups, in windows of the rule: enough to see a whole
# crossing even after a pass or two was missed (a lease changing hands).
LOOKBACK = 2
# After a restart or a failure, alerts raised this long ago get their notifications queued
# again (the dedup keys make that a no-op for those that were).
NOTICE_RECOVERY = DAY


@dataclass(frozen=True, slots=True)
class PassSummary:
    """What one pass did: the alerts it raised, how many it extended, notices it queued."""

    raised: tuple[Alert, ...]
    extended: int
    notices: int


def first_crossing(times: Sequence[float], threshold: int, window: float) -> int | None:
    """Index of the first attempt of the first ``threshold`` attempts (sorted ``times``)
    that lie within ``window`` seconds, first to last; None if there are none."""
    for start in range(len(times) - threshold + 1):
        if times[start + threshold - 1] - times[start] <= window:
            return start
    return None


def chain_length(times: Sequence[float], after: float, window: float) -> int:
    """How many of the sorted ``times`` continue a burst whose latest attempt was at
    ``after``: each must come within ``window`` of the one before."""
    count, last = 0, after
    for moment in times:
        if moment - last > window:
            break
        count, last = count + 1, moment
    return count


def common(values: Sequence[str]) -> str:
    """The one non-empty value among ``values``, or "" when there is none or several."""
    distinct = {value for value in values if value}
    return distinct.pop() if len(distinct) == 1 else ""


class AlertEvaluator(LeasedJob):
    """The background job: ``run_forever`` on every node; only the holder of the
    ``alerts`` lease evaluates (alerts must not stop DNS, nor stop for good).
    ``config_provider`` returns the current config, so rules edited in the console apply
    from the next pass."""

    def __init__(
        self,
        store: Store,
        config_provider: Callable[[], Config],
        *,
        interval: float = 10.0,
        settle: float = 5.0,
        lease_ttl: float = 60.0,
    ) -> None:
        super().__init__(store, LEASE, ttl=lease_ttl, interval=interval, log=log, what="safeguarding alerts")
        self.config_provider = config_provider
        self.settle = settle
        # Queue the recent alerts' notifications again on the first pass and after a failure.
        self._recover = True

    async def _run_pass(self) -> bool:
        """Evaluate if this node holds the lease. Taking it over from another node, whose
        last pass may have been cut short, or failing here, calls for a recovery."""
        try:
            had = self.lease.held
            if await self.lease.take():
                self._recover = self._recover or not had
                await self.run_once()
        except Exception:
            self._recover = True
            raise
        return False

    async def run_once(self, now: float | None = None) -> PassSummary:
        """One pass over every rule, for lookups older than ``settle`` seconds at ``now``."""
        now = time.time() if now is None else now
        config = self.config_provider()
        rules = {rule.name: rule for rule in config.policy.alert_rules}
        notices = 0
        if self._recover:
            for alert in await self.store.list_alerts(created_since=now - NOTICE_RECOVERY, limit=10_000):
                if alert.rule in rules:
                    notices += await enqueue_notices(self.store, alert, rules[alert.rule], config, now=now)
            self._recover = False
        raised: list[Alert] = []
        extended = 0
        for rule in rules.values():
            new, grown = await self._evaluate(rule, now - self.settle, now)
            for alert in new:
                log.warning("safeguarding alert %d raised by rule %s", alert.id, rule.name)
                notices += await enqueue_notices(self.store, alert, rule, config, now=now)
                # No device in the audit log: viewers read it, and alerts are not theirs to see.
                await self.store.audit(
                    ACTOR, "alert.raise", f"alert {alert.id}",
                    {"rule": rule.name, "group": alert.group, "attempts": alert.attempts},
                    now=now,
                )  # fmt: skip
            raised.extend(new)
            extended += grown
        return PassSummary(tuple(raised), extended, notices)

    async def _evaluate(self, rule: AlertRule, until: float, now: float) -> tuple[list[Alert], int]:
        """Extend the rule's ongoing bursts and raise its new ones from the uncovered
        lookups in the last ``LOOKBACK`` windows before ``until``."""
        since = until - LOOKBACK * rule.window
        latest = {a.subject: a for a in await self.store.recent_alerts(rule.name, rule.per, since=since - rule.window)}
        candidates = await self.store.alert_candidates(rule, since=since, until=until)
        subjects = sorted(set(latest) | {c.subject for c in candidates})
        if not subjects:
            return [], 0
        by_subject: dict[str, list[AlertAttempt]] = {}
        for attempt in await self.store.alert_attempts(rule, subjects=subjects, since=since, until=until):
            by_subject.setdefault(attempt.subject, []).append(attempt)
        raised: list[Alert] = []
        extended = 0
        for subject, attempts in by_subject.items():
            alert = latest.get(subject)
            if alert is not None:
                count = chain_length([a.time for a in attempts], alert.last_time, rule.window)
                if count:
                    if await self._extend(alert, attempts[:count]) is not None:
                        extended += 1
                    attempts = attempts[count:]
            raised.extend(await self._raise(rule, subject, attempts, now))
        return raised, extended

    async def _extend(self, alert: Alert, attempts: Sequence[AlertAttempt]) -> Alert | None:
        # An alert that has had several devices keeps saying so.
        client = common([alert.client, *(a.client for a in attempts)]) if alert.client else ""
        return await self.store.extend_alert(
            alert.id,
            attempts=len(attempts),
            last_time=attempts[-1].time,
            categories=sorted({*alert.categories, *(a.category for a in attempts)}),
            client=client,
            mac=common([alert.mac, *(a.mac for a in attempts)]) if client else "",
        )

    async def _raise(self, rule: AlertRule, subject: str, attempts: list[AlertAttempt], now: float) -> list[Alert]:
        """An alert for each burst in ``attempts`` (normally at most one; more only when
        passes were missed for a while)."""
        raised = []
        while (start := first_crossing([a.time for a in attempts], rule.threshold, rule.window)) is not None:
            rest = attempts[start + 1 :]
            end = start + 1 + chain_length([a.time for a in rest], attempts[start].time, rule.window)
            burst, attempts = attempts[start:end], attempts[end:]
            client = common([a.client for a in burst])
            alert = await self.store.create_alert(
                rule=rule.name, subject_kind=rule.per, subject=subject, group=burst[-1].group,
                client=client, mac=common([a.mac for a in burst]) if client else "",
                categories=sorted({a.category for a in burst}), first_time=burst[0].time,
                last_time=burst[-1].time, attempts=len(burst), window=rule.window, now=now,
            )  # fmt: skip
            if alert is not None:
                raised.append(alert)
        return raised
