"""Store operations for the outbox (mail and webhooks to deliver) and district-wide leases."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from filterdns.config.model import MailConfig
from filterdns.store.base import Row, StoreBase, current_time, marks

OUTBOX_COLUMNS = (
    "id, dedup_key, channel, kind, recipient, subject, body_text, body_html, headers, "
    "created, status, attempts, next_attempt, sent_at, last_error"
)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One mail or webhook call to deliver (or delivered). For a webhook, ``recipient`` is
    the URL and ``body_text`` the JSON body; ``headers`` are extra mail or HTTP headers."""

    id: int
    dedup_key: str
    channel: str  # "email" | "webhook"
    kind: str  # "digest" | "alert" | "test" | "password" (a reset link a parent asked for)
    recipient: str
    subject: str
    body_text: str
    body_html: str
    headers: dict[str, str]
    created: float
    status: str  # "pending" | "sending" | "sent" | "failed"
    attempts: int
    next_attempt: float
    sent_at: float | None
    last_error: str


STATUSES = ("pending", "sending", "sent", "failed")
CHANNELS = ("email", "webhook")
# How long a claimed message stays with the node that claimed it. A node that dies
# mid-send leaves its claims in 'sending'; once this passes, the next claim takes them
# again. Long enough for a whole batch of slow SMTP sends (20 x the 30 s default timeout).
CLAIM_HOLD = 15 * 60.0
INTERRUPTED = "interrupted: the node sending it stopped before it finished"


def _message(row: Row) -> OutboxMessage:
    row["headers"] = json.loads(row["headers"])
    return OutboxMessage(**row)


class OutboxQueries(StoreBase):
    """The ``outbox`` and ``leases`` tables (schema version 3)."""

    # --- enqueueing ---------------------------------------------------------------------

    async def enqueue_message(
        self, *, dedup_key: str, channel: str, kind: str, recipient: str, subject: str,
        body_text: str, body_html: str = "", headers: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> bool:
        """Queue a message for delivery now. False if a message with ``dedup_key`` exists
        already, sent or not: callers derive the key from what the message is about, so
        whatever runs twice (a restart, two nodes) queues it only once."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        when = current_time(now)
        changed = await self._execute(
            "INSERT INTO outbox (dedup_key, channel, kind, recipient, subject, body_text, "
            "body_html, headers, created, status, next_attempt) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT (dedup_key) DO NOTHING",
            [dedup_key, channel, kind, recipient, subject, body_text, body_html,
             json.dumps(dict(headers or {})), when, when],
        )
        return changed == 1

    # --- leases -------------------------------------------------------------------------

    async def acquire_lease(self, name: str, *, ttl: float, now: float | None = None) -> bool:
        """Take, renew or take over (once expired) the lease ``name`` for ``ttl`` seconds;
        True if this node holds it now. One statement, so two nodes racing for a free or
        expired lease cannot both win: the database serialises the upsert on the key."""
        when = current_time(now)
        rows = await self._query(
            "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
            "WHERE leases.holder = excluded.holder OR leases.expires < ? RETURNING holder",
            [name, self.node, when + ttl, when],
        )
        return bool(rows)

    async def release_lease(self, name: str) -> None:
        """Give up ``name`` if this node holds it, so another node may take it at once."""
        await self._execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, self.node])

    # --- delivery -----------------------------------------------------------------------

    async def claim_messages(
        self, limit: int, *, channels: Sequence[str] = CHANNELS, hold: float = CLAIM_HOLD,
        now: float | None = None,
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` due messages on ``channels`` for this node, oldest due
        first: pending ones whose ``next_attempt`` has come, and 'sending' ones whose
        claim ran out (their node died mid-send, so they may have gone out once: delivery
        is at least once, never silently lost). Each becomes 'sending' with one more
        attempt, held for ``hold`` seconds (kept in ``next_attempt``, so no extra column).

        One UPDATE, so two nodes never claim the same message: the due conditions are
        repeated outside the subquery because PostgreSQL re-checks only those on a row
        another transaction changed meanwhile. The rows are picked once (a materialised CTE:
        a plain subquery with a row lock may run again and pick more than ``limit``), and
        on PostgreSQL rows another node is claiming at this moment are skipped, so that each
        node takes what is left."""
        if not channels:
            return []
        when = current_time(now)
        due = f"status IN ('pending', 'sending') AND next_attempt <= ? AND channel IN ({marks(channels)})"
        rows = await self._query(
            f"WITH picked AS MATERIALIZED (SELECT id FROM outbox WHERE {due} "
            f"ORDER BY next_attempt, id LIMIT ?{self.CLAIM_SKIP_LOCKED}) "
            f"UPDATE outbox SET status = 'sending', claimed_by = ?, next_attempt = ?, "
            f"attempts = attempts + 1, "
            f"last_error = CASE WHEN status = 'sending' THEN ? ELSE last_error END "
            f"WHERE {due} AND id IN (SELECT id FROM picked) RETURNING {OUTBOX_COLUMNS}",
            [when, *channels, limit, self.node, when + hold, INTERRUPTED, when, *channels],
        )
        return sorted(map(_message, rows), key=lambda m: m.id)

    async def mark_sent(self, message_id: int, *, now: float | None = None) -> None:
        """Record a delivery: the message is never claimed again."""
        await self._execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, claimed_by = '', last_error = '' WHERE id = ?",
            [current_time(now), message_id],
        )

    async def mark_failed(
        self, message: OutboxMessage, error: str, *, retry: MailConfig, permanent: bool = False,
        now: float | None = None,
    ) -> OutboxMessage | None:
        """Record a failed attempt of a claimed ``message`` (its ``attempts`` counts this
        one). It goes back to pending after a backoff (``retry.retry_initial`` doubling per
        attempt, at most ``retry.retry_max``), or fails for good once ``retry.max_attempts``
        are used up or the failure is ``permanent`` (a recipient the server refuses).
        ``retry`` is the mail section, whose settings apply to webhooks as well. Returns
        the message as stored now (None if it is gone)."""
        when = current_time(now)
        gave_up = permanent or message.attempts >= retry.max_attempts
        delay = min(retry.retry_max, retry.retry_initial * 2 ** max(0, message.attempts - 1))
        rows = await self._query(
            f"UPDATE outbox SET status = ?, next_attempt = ?, claimed_by = '', last_error = ? "
            f"WHERE id = ? RETURNING {OUTBOX_COLUMNS}",
            ["failed" if gave_up else "pending", when if gave_up else when + delay, error[:1000], message.id],
        )
        return _message(rows[0]) if rows else None

    # --- the console ----------------------------------------------------------------------

    async def get_message(self, message_id: int) -> OutboxMessage | None:
        rows = await self._query(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", [message_id])
        return _message(rows[0]) if rows else None

    async def list_messages(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100,
        before_id: int | None = None, hide_kind: str | None = None,
    ) -> list[OutboxMessage]:
        """Messages newest first, optionally only one status and/or kind, or all but
        ``hide_kind``; ``before_id`` pages back from there."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        conditions: list[str] = []
        params: list[object] = []
        for column, value in (("status", status), ("kind", kind)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if hide_kind is not None:
            conditions.append("kind <> ?")
            params.append(hide_kind)
        rows = await self._newest_first(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox", conditions, params, limit=limit, before_id=before_id
        )
        return [_message(row) for row in rows]

    async def count_messages(self) -> dict[str, int]:
        """How many messages are in each status (every status present, zero or not)."""
        rows = await self._query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status", [])
        return {status: 0 for status in STATUSES} | {row["status"]: int(row["n"]) for row in rows}

    async def retry_message(self, message_id: int, *, now: float | None = None) -> bool:
        """Put a failed message back in the queue, due now and with a fresh set of
        attempts (an admin retries after fixing the cause). Its last error stays visible
        until the next attempt. False if it is not a failed message."""
        changed = await self._execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt = ? WHERE id = ? AND status = 'failed'",
            [current_time(now), message_id],
        )
        return changed == 1

    # --- retention ------------------------------------------------------------------------

    async def delete_old_messages(self, before: float) -> int:
        """Delete sent and failed messages created before ``before``; returns how many.
        Their dedup keys go with them, so keep them longer than anything that could queue
        the same key again (a week's digest is queued during that week only)."""
        return await self._execute(
            "DELETE FROM outbox WHERE status IN ('sent', 'failed') AND created < ?", [before]
        )
