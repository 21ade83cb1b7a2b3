"""Store operations for parents' profiles: a parent account's children, language and
weekly digest choice."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from filterdns.store.base import Row, StoreBase

_PROFILE_COLUMNS = 'user_name AS "user", children, language, digest, pupils'


@dataclass(frozen=True, slots=True)
class ParentProfile:
    """What a parent account has beyond its ``User`` row (whose ``groups`` are the classes
    the parent may see): their children as (child name, group) pairs, the language of
    their pages ("" means the browser's choice), and whether they get the weekly digest
    by mail (on until they turn it off or unsubscribe)."""

    user: str
    children: tuple[tuple[str, str], ...]
    language: str
    digest: bool
    pupils: tuple[str, ...] = ()  # the roster's pupil ids of their children (take-home devices)


def _profile(row: Row) -> ParentProfile:
    row["children"] = tuple((str(child), str(group)) for child, group in json.loads(row["children"]))
    row["digest"] = bool(row["digest"])
    row["pupils"] = tuple(json.loads(row["pupils"]))
    return ParentProfile(**row)


class ParentQueries(StoreBase):
    """The ``parent_profiles`` table."""

    async def save_parent_profile(self, user: str, children: Sequence[tuple[str, str]]) -> ParentProfile:
        """Create a parent's profile or replace their children (the language is kept).
        The ``users`` row must exist; deleting it deletes the profile."""
        rows = await self._query(
            "INSERT INTO parent_profiles (user_name, children, language) VALUES (?, ?, '') "
            "ON CONFLICT (user_name) DO UPDATE SET children = excluded.children "
            f"RETURNING {_PROFILE_COLUMNS}",
            [user, json.dumps([[child, group] for child, group in children])],
        )
        return _profile(rows[0])

    async def set_parent_language(self, user: str, language: str) -> bool:
        """Set the language of a parent's pages ("": the browser's); False if no profile."""
        return await self._execute(
            "UPDATE parent_profiles SET language = ? WHERE user_name = ?", [language, user]
        ) > 0

    async def set_parent_digest(self, user: str, on: bool) -> bool:
        """Turn a parent's weekly digest mail on or off; False if they have no profile."""
        return await self._execute(
            "UPDATE parent_profiles SET digest = ? WHERE user_name = ?", [bool(on), user]
        ) > 0

    async def set_parent_pupils(self, user: str, pupils: Sequence[str]) -> bool:
        """Link a parent to their children's roster pupil ids; False if they have no profile."""
        return await self._execute(
            "UPDATE parent_profiles SET pupils = ? WHERE user_name = ?", [json.dumps(list(pupils)), user]
        ) > 0

    async def get_parent_profile(self, user: str) -> ParentProfile | None:
        rows = await self._query(f"SELECT {_PROFILE_COLUMNS} FROM parent_profiles WHERE user_name = ?", [user])
        return _profile(rows[0]) if rows else None

    async def list_parent_profiles(self) -> list[ParentProfile]:
        rows = await self._query(f"SELECT {_PROFILE_COLUMNS} FROM parent_profiles ORDER BY user_name")
        return [_profile(r) for r in rows]
