"""The background job that empties the outbox.

One node at a time delivers (the holder of the district-wide "outbox" lease); on top of
that each message is claimed in the store before it is sent, so even two nodes that both
believe they hold the lease cannot send one message twice. A message is marked sent right
after the server accepted it; one that fails goes back to the queue with backoff, and the
console shows its attempts and last error.

Without mail settings (``mail.host`` empty) mail simply waits in the outbox, and goes out
once mail is configured; webhooks are delivered either way.

A mail server or webhook that stops accepting is logged once as a WARNING when the first
message fails and once as INFO when one goes through again; the retries in between are
debug lines. A message given up on (refused for itself, or out of attempts) is logged on its
own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from filterdns.config.model import IPNetwork, MailConfig
from filterdns.notify import DeliveryError
from filterdns.notify.smtp import send_mail
from filterdns.notify.webhook import post_webhook
from filterdns.store import OutboxMessage, Store
from filterdns.store.lease import LeasedJob
from filterdns.store.outage import OutageLog
from filterdns.store.outbox import CHANNELS

log = logging.getLogger("filterdns.outbox")

LEASE = "outbox"
# Another node takes over delivery this long after the holder stopped renewing.
LEASE_TTL = 60.0
WEBHOOK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Pass:
    """What one pass did: messages claimed, and how many of them were delivered."""

    claimed: int
    delivered: int


class OutboxDelivery(LeasedJob):
    """Delivers due outbox messages, ``batch`` per pass, every ``poll_interval`` seconds
    (at once after ``wake()``, and again at once after a full batch). ``mail`` may be
    replaced on a config reload."""

    def __init__(
        self, store: Store, mail: MailConfig, *, poll_interval: float = 5.0, batch: int = 20,
        webhook_timeout: float = WEBHOOK_TIMEOUT, tls_context: ssl.SSLContext | None = None,
        fetch_allow: Sequence[IPNetwork] = (),
    ) -> None:
        super().__init__(store, LEASE, ttl=LEASE_TTL, interval=poll_interval, log=log, what="outbox delivery")
        self.mail = mail
        self.batch = batch
        self.webhook_timeout = webhook_timeout
        self.fetch_allow = tuple(fetch_allow)  # internal networks webhooks may reach
        self._tls_context = tls_context
        self._wakeup = asyncio.Event()
        self._outages: dict[str, OutageLog] = {}  # by destination: the mail server, each webhook URL

    def wake(self) -> None:
        """Start the next pass now rather than at the next poll (after an enqueue)."""
        self._wakeup.set()

    async def run_once(self, now: float | None = None) -> int:
        """One pass, if this node holds the lease; returns how many messages went out.
        Store errors propagate (``run_forever`` survives them)."""
        return (await self._pass(now)).delivered

    async def run_forever(self) -> None:
        """``LeasedJob.run_forever``, after saying once whether mail goes out at all."""
        if not self.mail.enabled:
            log.info("mail is not configured (mail.host): mail waits in the outbox; webhooks are delivered")
        await super().run_forever()

    async def _run_pass(self) -> bool:
        return (await self._pass(None)).claimed >= self.batch  # a full batch: more is due

    async def _pause(self) -> None:
        """Until the next poll, or ``wake()``."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self.interval)
        self._wakeup.clear()

    async def _pass(self, now: float | None) -> Pass:
        start = time.time() if now is None else now
        if not await self.lease.take(start):
            return Pass(0, 0)
        channels = CHANNELS if self.mail.enabled else ("webhook",)
        messages = await self.store.claim_messages(self.batch, channels=channels, now=start)
        delivered = 0
        for message in messages:
            delivered += await self._deliver(message, now)
        return Pass(len(messages), delivered)

    async def _deliver(self, message: OutboxMessage, now: float | None) -> int:
        """Send one claimed message and record the outcome; 1 if it went out."""
        try:
            await self._send(message, now)
        except DeliveryError as error:
            await self._record_failure(message, error, now)
            return 0
        except Exception as error:  # a bug must not leave the message stuck in 'sending'
            log.exception("unexpected error delivering outbox message %d", message.id)
            await self._record_failure(message, DeliveryError(f"unexpected error: {error!r}"), now)
            return 0
        await self.store.mark_sent(message.id, now=now)
        self._destination_outage(message).recovered("%s accepts messages again", self._destination(message))
        log.info("delivered outbox message %d (%s %s to %s)", message.id, message.kind, message.channel, message.recipient)
        return 1

    def _destination(self, message: OutboxMessage) -> str:
        """Where a message goes, for the log: the webhook's URL or the mail server."""
        if message.channel == "webhook":
            return f"the webhook {message.recipient}"
        return f"the mail server {self.mail.host}:{self.mail.port}"

    def _destination_outage(self, message: OutboxMessage) -> OutageLog:
        destination = self._destination(message)
        outage = self._outages.get(destination)
        if outage is None:
            outage = self._outages[destination] = OutageLog(log)
        return outage

    async def _send(self, message: OutboxMessage, now: float | None) -> None:
        if message.channel == "webhook":
            await post_webhook(message, timeout=self.webhook_timeout, fetch_allow=self.fetch_allow)
        else:
            await send_mail(message, self.mail, tls_context=self._tls_context, now=now)

    async def _record_failure(self, message: OutboxMessage, error: DeliveryError, now: float | None) -> None:
        stored = await self.store.mark_failed(
            message, error.reason, retry=self.mail, permanent=error.permanent, now=now
        )
        if not error.permanent:  # a refusal of this one message says nothing of the server
            self._destination_outage(message).failed("%s is not accepting messages: %s; they wait in the outbox and are retried",
                                         self._destination(message), error.reason)  # fmt: skip
        if stored is not None and stored.status == "failed":
            log.error("gave up on outbox message %d to %s after %d attempt(s): %s",
                      message.id, message.recipient, stored.attempts, error.reason)
        else:
            log.debug("outbox message %d to %s failed (attempt %d): %s",
                      message.id, message.recipient, message.attempts, error.reason)
