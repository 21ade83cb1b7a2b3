"""What the engine answers with: a ``Decision`` per (policy, name), and the teacher's
``OverrideRule`` it may apply. Kept apart from ``engine`` so that the modules the engine
builds on (``groupstate``, ``home``) can make decisions without importing the engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from filterdns.config.model import BlockMode
from filterdns.wire.rcodes import RCODE_NOERROR

Action = Literal["allow", "block", "rewrite"]
Reason = Literal[
    "allow-list", "deny-list", "category", "scheduled-category", "safe-search", "bypass-protection", "override",
    "default", "locked", "essential", "parent",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one (group, name), shared by every query it applies to.

    ``rcode_override``, when not None, tells the answerer to reply with that rcode and no
    records instead of applying ``block_mode``; 0 (NOERROR with nothing) is NODATA."""

    action: Action
    reason: Reason
    group: str
    block_mode: BlockMode
    category: str = ""
    rewrite_target: str = ""
    rcode_override: int | None = None
    schedule_window: str = ""
    detail: str = ""

    @property
    def nodata(self) -> bool:
        return self.rcode_override == RCODE_NOERROR


@dataclass(frozen=True, slots=True)
class OverrideRule:
    """A teacher's time-boxed exception for one group: allow or block one domain (and its
    subdomains) or one category until ``expires_at`` (unix time)."""

    group: str
    kind: Literal["allow", "block"]
    domain: str
    category: str
    created_by: str
    expires_at: float

    @property
    def label(self) -> str:
        until = datetime.fromtimestamp(self.expires_at, timezone.utc).strftime("%H:%M UTC")
        return f"override by {self.created_by} until {until}"
