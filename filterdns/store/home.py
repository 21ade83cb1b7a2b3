"""Store operations for take-home devices (issue 19): every revision of a pupil's home
settings, as their parents set them. Nothing is updated in place: the newest revision per
pupil is in force, and the school sees the history."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from filterdns.store.base import Row, StoreBase, current_time


@dataclass(frozen=True, slots=True)
class HomeRevision:
    """One revision of a pupil's home settings: ``settings`` as ``HomeSettings.to_json``."""

    id: int
    pupil: str
    settings: dict[str, Any]
    author: str
    created: float


def _revision(row: Row) -> HomeRevision:
    row["settings"] = json.loads(row["settings"])
    return HomeRevision(**row)


_COLUMNS = "id, pupil, settings, author, created"


class HomeQueries(StoreBase):
    """The ``home_settings`` table."""

    async def save_home_settings(
        self, pupil: str, settings: dict[str, Any], *, author: str, now: float | None = None
    ) -> HomeRevision:
        rows = await self._query(
            f"INSERT INTO home_settings (pupil, settings, author, created) VALUES (?, ?, ?, ?) RETURNING {_COLUMNS}",
            [pupil, json.dumps(settings, sort_keys=True), author, current_time(now)],
        )
        return _revision(rows[0])

    async def current_home_settings(self) -> dict[str, HomeRevision]:
        """The revision in force for every pupil that has one."""
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM home_settings WHERE id IN (SELECT max(id) FROM home_settings GROUP BY pupil)"
        )
        return {row["pupil"]: _revision(row) for row in rows}

    async def home_settings_history(self, pupil: str, limit: int = 50) -> list[HomeRevision]:
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM home_settings WHERE pupil = ? ORDER BY id DESC LIMIT ?", [pupil, limit]
        )
        return [_revision(row) for row in rows]

    async def count_home_blocked(
        self, pupil: str, since: float, until: float, *, top: int = 10
    ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """``pupil``'s blocked lookups at home between ``since`` and ``until``: (category,
        count) most first ("" for a parent's bedtime or pause), and the ``top`` most blocked
        names. For that child's parents only (``server/home_profiles``)."""
        where = "pupil = ? AND group_name LIKE '%@home' AND verdict = 'blocked' AND time >= ? AND time < ?"
        params = [pupil, since, until]
        categories = await self._query(
            f"SELECT category, count(*) AS n FROM query_events WHERE {where} GROUP BY category ORDER BY n DESC, category",
            params,
        )
        names = await self._query(
            f"SELECT name, count(*) AS n FROM query_events WHERE {where} GROUP BY name ORDER BY n DESC, name LIMIT ?",
            [*params, top],
        )
        return [(r["category"], int(r["n"])) for r in categories], [(r["name"], int(r["n"])) for r in names]
