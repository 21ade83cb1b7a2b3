"""``Store``: every operation of the store, assembled from one mixin per kind of data.

Each mixin's SQL sits in the module named for what it holds (``events``, ``users``,
``policy``, ``audit``, ``reviews``, ``parents``, ``server_secrets``, ``outbox``, ``alerts``);
``base`` holds what they stand on. Only retention, which spans every kind, is written here.
"""

from __future__ import annotations

from filterdns.store.alerts import AlertQueries
from filterdns.store.audit import AuditQueries
from filterdns.store.base import DAY, current_time
from filterdns.store.events import EventQueries
from filterdns.store.home import HomeQueries
from filterdns.store.outbox import OutboxQueries
from filterdns.store.parents import ParentQueries
from filterdns.store.policy import PolicyQueries
from filterdns.store.reviews import ParentNoteQueries, ReviewQueries
from filterdns.store.server_secrets import SecretQueries
from filterdns.store.users import UserQueries

# Outbox rows are kept at least this long: a weekly digest may be queued up to six days late.
MIN_MESSAGE_DAYS = 8


class Store(
    EventQueries, UserQueries, PolicyQueries, AuditQueries, ReviewQueries, ParentQueries,
    SecretQueries, OutboxQueries, AlertQueries, HomeQueries, ParentNoteQueries,
):  # fmt: skip
    """The store's operations. Open with ``filterdns.store.open_store``; a backend
    (``SQLiteStore``, ``PostgresStore``) supplies the primitives of ``StoreBase``."""

    async def enforce_retention(self, now: float | None = None) -> dict[str, int]:
        """Delete what is older than the configured retention, and expired sessions.
        Returns how many rows went, per kind. Run it periodically (hourly is plenty)."""
        now = current_time(now)
        s = self.settings
        return {
            "events": await self.delete_events_before(now - s.raw_events_days * DAY),
            # What a take-home device asked at home is kept for less (policy/home.py).
            "home_events": await self.delete_events_before(now - s.home_days * DAY, home=True)
            + await self.delete_counts_before(now - s.home_days * DAY, home=True),
            "aggregates": await self.delete_counts_before(now - s.aggregates_days * DAY),
            "audit": await self.delete_audit_before(now - s.audit_days * DAY),
            "sessions": await self.delete_expired_sessions(now=now),
            # Sent mail holds what the events held, so it goes with them; but never before a
            # digest's dedup key has outlived the days in which that digest may still be queued.
            "messages": await self.delete_old_messages(now - max(s.raw_events_days, MIN_MESSAGE_DAYS) * DAY),
            # Safeguarding alerts are records of what staff did about a concern, like the audit.
            "alerts": await self.delete_alerts_before(now - s.audit_days * DAY),
            # A parent's note and its answer are records of what the school was told and did.
            "parent_notes": await self.delete_parent_notes_before(now - s.audit_days * DAY),
        }
