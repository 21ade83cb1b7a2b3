"""Store operations for the audit log: who did what to what, kept for compliance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from filterdns.store.base import Row, StoreBase, Where, current_time

_AUDIT_COLUMNS = "id, time, node, actor, action, target, detail"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: float
    node: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None


def _audit(row: Row) -> AuditEntry:
    row["detail"] = json.loads(row["detail"])
    return AuditEntry(**row)


class AuditQueries(StoreBase):
    """The ``audit_log`` table."""

    async def audit(
        self, actor: str, action: str, target: str = "",
        detail: dict[str, Any] | None = None, *, now: float | None = None,
    ) -> None:
        """Record who did what to what; ``detail`` must be JSON-serialisable."""
        await self._execute(
            "INSERT INTO audit_log (time, node, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [current_time(now), self.node, actor, action, target, json.dumps(detail or {})],
        )

    async def list_audit(
        self, where: AuditFilter = AuditFilter(), *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Audit entries newest first; ``before_id`` pages back from there."""
        w = Where()
        w.equal("actor", where.actor)
        w.equal("action", where.action)
        w.equal("target", where.target)
        w.between("time", where.since, where.until)
        rows = await self._newest_first(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log", w.clauses, w.params, limit=limit, before_id=before_id
        )
        return [_audit(r) for r in rows]

    async def delete_audit_before(self, cutoff: float) -> int:
        """Retention: delete entries older than ``cutoff``; returns how many."""
        return await self._execute("DELETE FROM audit_log WHERE time < ?", [cutoff])
