"""The readings operators alert on, taken from the running service when Prometheus scrapes:
upstream health, list sources that failed, and rate limiting. Nothing here is kept or counted
on the query path; each reading asks the part that already knows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filterdns.server.service import Service


class ServiceHealth:
    """:class:`filterdns.metrics.HealthReadings` of one service. Reads ``service.upstream``
    and the policy at every scrape, so a SIGHUP's new upstreams or lists are what it shows."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def upstreams_healthy(self) -> Mapping[str, bool]:
        return {health.label: health.healthy for health in self._service.upstream.health()}

    def failing_list_sources(self) -> Mapping[str, int]:
        policy = self._service.active.policy
        if policy is None:
            return {}
        failing = Counter(status.category for status in policy.categories.statuses if status.error)
        return {category: failing.get(category, 0) for category in policy.categories.names}

    def rate_limited(self) -> int:
        pipeline = self._service.pipeline
        return 0 if pipeline is None else pipeline.rate_limiter.limited
