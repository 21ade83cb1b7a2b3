"""``Explanation``: everything behind one policy decision, as ``PolicyEngine.explain`` finds
it, for ``filterdns explain``, the console's domain check and the block page. Kept apart
from the engine, which builds it, because it is read far from the query path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from filterdns.policy.schedule import Window

if TYPE_CHECKING:
    from filterdns.policy.decision import Decision


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything behind one decision, for ``filterdns explain`` and the console."""

    name: str
    group: str
    at: datetime
    # Suffixes of the name found in category lists, with their category names.
    listings: tuple[tuple[str, tuple[str, ...]], ...]
    # Allow/deny entries covering the name: (entry, which list), best rank first.
    list_entries: tuple[tuple[str, str], ...]
    # Categories blocked for the group at ``at``, in priority order.
    blocked_categories: tuple[str, ...]
    # Open windows of the schedules the group's rules use.
    windows: tuple[Window, ...]
    decision: Decision
    descriptions: Mapping[str, str]

    def render(self) -> str:
        """Plain text, one fact per line."""

        def described(category: str) -> str:
            description = self.descriptions.get(category)
            return f"{category} ({description})" if description else category

        lines = [f"{self.name} for group {self.group} at {self.at.isoformat(timespec='minutes')}"]
        for suffix, categories in self.listings:
            lines.append(f"  listed: {suffix} in {', '.join(map(described, categories))}")
        if not self.listings:
            lines.append("  listed: in no category")
        lines.extend(f"  list entry: {entry} on {source}" for entry, source in self.list_entries)
        lines.append(f"  blocked for {self.group} now: {', '.join(self.blocked_categories) or 'nothing'}")
        for window in self.windows:
            span = f"{window.start:%Y-%m-%d %H:%M}-{window.end:%H:%M} {window.start.tzname()}"
            lines.append(f"  open window: {window.schedule} {window.label} ({span})")
        verdict = self.decision.action
        if self.decision.rewrite_target:
            verdict += f" to {self.decision.rewrite_target}"
        lines.append(f"  verdict: {verdict} ({self.decision.reason})")
        lines.append(f"  {self.decision.detail}")
        return "\n".join(lines)
