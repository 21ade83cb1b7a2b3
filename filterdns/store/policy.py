"""Store operations for what the policy is made of beyond the config file: saved policy
revisions (the YAML every node loads) and teachers' time-boxed overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from filterdns.store.base import Row, StoreBase, check_choice, current_time

OverrideKind = Literal["allow", "block"]

_REVISION_COLUMNS = "id, created, node, author, comment, yaml_text"
_OVERRIDE_COLUMNS = (
    'id, group_name AS "group", kind, domain, category, created_by, created_at, '
    "expires_at, revoked"
)


@dataclass(frozen=True, slots=True)
class Revision:
    """One saved version of the policy YAML. Ids only grow, in the order revisions commit,
    so "a newer policy exists" is ``latest_revision_id() > the id I loaded``."""

    id: int
    created: float
    node: str
    author: str
    comment: str
    yaml_text: str


@dataclass(frozen=True, slots=True)
class Override:
    """A time-boxed exception for one group: allow or block a domain or a whole category."""

    id: int
    group: str
    kind: OverrideKind
    domain: str  # exactly one of domain and category is set; the other is ""
    category: str
    created_by: str
    created_at: float
    expires_at: float
    revoked: bool


def _override(row: Row) -> Override:
    row["revoked"] = bool(row["revoked"])
    return Override(**row)


class PolicyQueries(StoreBase):
    """The ``policy_revisions`` and ``overrides`` tables."""

    # --- policy revisions -------------------------------------------------------------

    async def add_revision(
        self, yaml_text: str, author: str, comment: str = "", *, now: float | None = None
    ) -> int:
        """Save a policy version; returns its id, greater than every earlier one."""
        rows = await self._query_exclusive(
            "INSERT INTO policy_revisions (id, created, node, author, comment, yaml_text) "
            "SELECT coalesce(max(id), 0) + 1, ?, ?, ?, ?, ? FROM policy_revisions RETURNING id",
            [current_time(now), self.node, author, comment, yaml_text],
        )
        return int(rows[0]["id"])

    async def import_revision(self, yaml_text: str, author: str, comment: str = "", *, now: float | None = None) -> int | None:
        """Save ``yaml_text`` as a revision by ``author`` unless it equals the newest revision
        or ``author``'s last one; returns the new id, or None when nothing was saved. One
        statement under the exclusive lock: nodes starting together with the same config
        file import it once."""
        rows = await self._query_exclusive(
            "INSERT INTO policy_revisions (id, created, node, author, comment, yaml_text) "
            "SELECT next_id, ?, ?, ?, ?, ? FROM (SELECT coalesce(max(id), 0) + 1 AS next_id FROM policy_revisions) AS n "
            "WHERE NOT EXISTS (SELECT 1 FROM (SELECT yaml_text FROM policy_revisions ORDER BY id DESC LIMIT 1) AS latest "
            "WHERE latest.yaml_text = ?) "
            "AND NOT EXISTS (SELECT 1 FROM (SELECT yaml_text FROM policy_revisions WHERE author = ? ORDER BY id DESC LIMIT 1) "
            "AS imported WHERE imported.yaml_text = ?) "
            "RETURNING id",
            [current_time(now), self.node, author, comment, yaml_text, yaml_text, author, yaml_text],
        )
        return int(rows[0]["id"]) if rows else None

    async def latest_revision_id(self) -> int:
        """The newest revision's id (0: none yet). One primary-key lookup: cheap to poll."""
        rows = await self._query("SELECT coalesce(max(id), 0) AS id FROM policy_revisions")
        return int(rows[0]["id"])

    async def latest_revision(self) -> Revision | None:
        rows = await self._query(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions ORDER BY id DESC LIMIT 1"
        )
        return Revision(**rows[0]) if rows else None

    async def get_revision(self, revision_id: int) -> Revision | None:
        rows = await self._query(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions WHERE id = ?", [revision_id]
        )
        return Revision(**rows[0]) if rows else None

    async def list_revisions(self, *, limit: int = 50, before_id: int | None = None) -> list[Revision]:
        """Revisions newest first; ``before_id`` pages back from there."""
        rows = await self._newest_first(
            f"SELECT {_REVISION_COLUMNS} FROM policy_revisions", [], [], limit=limit, before_id=before_id
        )
        return [Revision(**r) for r in rows]

    # --- overrides --------------------------------------------------------------------

    async def add_override(
        self, group: str, kind: OverrideKind, *,
        domain: str = "", category: str = "",
        created_by: str, expires_at: float, now: float | None = None,
    ) -> Override:
        """Allow or block one domain or one category for a group until ``expires_at``."""
        check_choice(kind, OverrideKind, "override kind")
        if bool(domain) == bool(category):
            raise ValueError("an override names exactly one of domain and category")
        created = current_time(now)
        if expires_at <= created:
            raise ValueError("an override must expire in the future")
        rows = await self._query(
            "INSERT INTO overrides (group_name, kind, domain, category, created_by, created_at, "
            f"expires_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, FALSE) RETURNING {_OVERRIDE_COLUMNS}",
            [group, kind, domain.lower().strip("."), category, created_by, created, expires_at],
        )
        return _override(rows[0])

    async def list_active_overrides(self, *, now: float | None = None) -> list[Override]:
        """Overrides in force at ``now``: not revoked and not expired. Small and indexed,
        so resolver nodes can poll it."""
        rows = await self._query(
            f"SELECT {_OVERRIDE_COLUMNS} FROM overrides WHERE NOT revoked AND expires_at > ? ORDER BY id",
            [current_time(now)],
        )
        return [_override(r) for r in rows]

    async def revoke_override(self, override_id: int) -> bool:
        """End an override early; False if it does not exist or was revoked already."""
        return await self._execute(
            "UPDATE overrides SET revoked = TRUE WHERE id = ? AND NOT revoked", [override_id]
        ) > 0
