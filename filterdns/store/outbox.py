"""Store operations for the outbox (mail and webhooks to deliver) and district-wide leases."""

from __future__ import annotations

from filterdns.store.feature import FeatureQueries


class OutboxQueries(FeatureQueries):
    """The ``outbox`` and ``leases`` tables (schema version 3)."""
