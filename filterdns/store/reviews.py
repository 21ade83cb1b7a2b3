"""Store operations for review requests: "please unblock this", sent from the block page
and decided by staff."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from filterdns.store.base import StoreBase, Where, current_time

ReviewStatus = Literal["pending", "approved", "declined"]

_REVIEW_COLUMNS = (
    'id, created, node, name, group_name AS "group", client, reason, status, '
    "decided_by, decided_at"
)


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """A "please unblock this" sent from the block page."""

    id: int
    created: float
    node: str
    name: str
    group: str
    client: str
    reason: str
    status: ReviewStatus
    decided_by: str | None
    decided_at: float | None


class ReviewQueries(StoreBase):
    """The ``review_requests`` table."""

    async def add_review_request(
        self, name: str, group: str, client: str, reason: str, *, now: float | None = None
    ) -> ReviewRequest:
        rows = await self._query(
            "INSERT INTO review_requests (created, node, name, group_name, client, reason, status) "
            f"VALUES (?, ?, ?, ?, ?, ?, 'pending') RETURNING {_REVIEW_COLUMNS}",
            [current_time(now), self.node, name, group, client, reason],
        )
        return ReviewRequest(**rows[0])

    async def list_review_requests(
        self, *, status: ReviewStatus | None = None, groups: Sequence[str] | None = None,
        limit: int = 100, before_id: int | None = None,
    ) -> list[ReviewRequest]:
        """Requests newest first, optionally of one status and within a group scope."""
        w = Where()
        w.equal("status", status)
        w.one_of("group_name", groups)
        rows = await self._newest_first(
            f"SELECT {_REVIEW_COLUMNS} FROM review_requests", w.clauses, w.params,
            limit=limit, before_id=before_id,
        )
        return [ReviewRequest(**r) for r in rows]

    async def decide_review_request(
        self, request_id: int, status: Literal["approved", "declined"], decided_by: str,
        *, now: float | None = None,
    ) -> ReviewRequest | None:
        """Approve or decline a pending request; ``None`` if it is not pending (any more),
        so two staff deciding at once cannot both win."""
        if status not in ("approved", "declined"):
            raise ValueError(f"a review is decided as approved or declined, not {status!r}")
        rows = await self._query(
            "UPDATE review_requests SET status = ?, decided_by = ?, decided_at = ? "
            f"WHERE id = ? AND status = 'pending' RETURNING {_REVIEW_COLUMNS}",
            [status, decided_by, current_time(now), request_id],
        )
        return ReviewRequest(**rows[0]) if rows else None
