"""Store operations for the staff's Reviews queue: review requests ("please unblock this",
sent from the block page and decided by staff) and parents' notes (a block or a concern
about their child, answered by staff in a few words)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from filterdns.store.base import StoreBase, Where, current_time

ReviewStatus = Literal["pending", "approved", "declined"]
Place = Literal["home", "school"]

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


_NOTE_COLUMNS = (
    'id, created, parent, child, group_name AS "group", place, site, text, answer, '
    "answered_by, answered_at"
)


@dataclass(frozen=True, slots=True)
class ParentNote:
    """A parent's note to the school about ``child`` (of ``group``), on something that
    happened at ``place``; ``answer`` is None until staff answer."""

    id: int
    created: float
    parent: str
    child: str
    group: str
    place: Place
    site: str
    text: str
    answer: str | None
    answered_by: str | None
    answered_at: float | None


class ParentNoteQueries(StoreBase):
    """The ``parent_notes`` table."""

    async def add_parent_note(
        self, parent: str, child: str, group: str, place: Place, site: str, text: str,
        *, now: float | None = None,
    ) -> ParentNote:  # fmt: skip
        rows = await self._query(
            "INSERT INTO parent_notes (created, parent, child, group_name, place, site, text) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_NOTE_COLUMNS}",
            [current_time(now), parent, child, group, place, site, text],
        )
        return ParentNote(**rows[0])

    async def list_parent_notes(
        self, *, parent: str | None = None, groups: Sequence[str] | None = None,
        answered: bool | None = None, limit: int = 100, before_id: int | None = None,
    ) -> list[ParentNote]:
        """Notes newest first: one parent's, or those within a group scope, optionally
        only the answered (or unanswered) ones."""
        w = Where()
        w.equal("parent", parent)
        w.one_of("group_name", groups)
        if answered is not None:
            w.add("answer IS NOT NULL" if answered else "answer IS NULL")
        rows = await self._newest_first(
            f"SELECT {_NOTE_COLUMNS} FROM parent_notes", w.clauses, w.params, limit=limit, before_id=before_id
        )
        return [ParentNote(**r) for r in rows]

    async def answer_parent_note(
        self, note_id: int, answer: str, answered_by: str, *, now: float | None = None
    ) -> ParentNote | None:
        """Answer a note not yet answered; ``None`` if it is answered already (or does not
        exist), so that two staff answering at once cannot both win."""
        rows = await self._query(
            "UPDATE parent_notes SET answer = ?, answered_by = ?, answered_at = ? "
            f"WHERE id = ? AND answer IS NULL RETURNING {_NOTE_COLUMNS}",
            [answer, answered_by, current_time(now), note_id],
        )
        return ParentNote(**rows[0]) if rows else None

    async def delete_parent_notes_before(self, cutoff: float) -> int:
        """Notes (with what they say about a child) go with the audit log's retention."""
        return await self._execute("DELETE FROM parent_notes WHERE created < ?", [cutoff])
