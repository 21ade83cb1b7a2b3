"""Store operations for safeguarding alerts."""

from __future__ import annotations

from filterdns.store.feature import FeatureQueries


class AlertQueries(FeatureQueries):
    """The ``alerts`` table (schema version 3)."""
