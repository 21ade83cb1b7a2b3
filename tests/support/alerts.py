"""Blocked lookups as the query pipeline records them, for the safeguarding alert tests."""

from __future__ import annotations

from typing import Any

from filterdns.resolver.events import QueryEvent

MAC = "aa:bb:cc:00:07:21"


def attempt(t: float, category: str = "self-harm", *, client: str = "10.0.7.21", group: str = "7b",
            name: str = "", **changes: Any) -> QueryEvent:  # fmt: skip
    """A lookup blocked for its category (``changes`` override any other field)."""
    fields: dict[str, Any] = {
        "time": t, "client": client, "group": group, "name": name or f"{category or 'other'}-site.example",
        "qtype": 1, "verdict": "blocked", "reason": "category", "category": category, "rcode": 0,
        "latency_ms": 1.0, "answered_by": "policy", "transport": "udp", "mac": MAC,
    }  # fmt: skip
    fields.update(changes)
    return QueryEvent(**fields)


def canary(t: float, **changes: Any) -> QueryEvent:
    """A canary name, as the pipeline records it: blocked, reason bypass-protection, no category."""
    return attempt(t, "", name="use-application-dns.net", **{"reason": "bypass-protection", **changes})
