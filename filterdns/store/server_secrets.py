"""Store operations for server secrets: random keys shared by every node of a store (for
example the key that signs parents' unsubscribe and password links)."""

from __future__ import annotations

from filterdns.store.base import StoreBase, current_time


class SecretQueries(StoreBase):
    """The ``secrets`` table."""

    async def get_secret(self, name: str, candidate: str, *, now: float | None = None) -> str:
        """The server secret called ``name``. If there is none yet, ``candidate`` (fresh
        random text from the caller) becomes it; when two nodes race, both get the one that
        was stored first."""
        rows = await self._query("SELECT value FROM secrets WHERE name = ?", [name])
        if not rows:
            await self._execute(
                "INSERT INTO secrets (name, value, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                [name, candidate, current_time(now)],
            )
            rows = await self._query("SELECT value FROM secrets WHERE name = ?", [name])
        return str(rows[0]["value"])

    async def set_secret(self, name: str, value: str, *, now: float | None = None) -> None:
        """Replace (rotate) a server secret: whatever the old one signed stops being valid."""
        await self._execute(
            "INSERT INTO secrets (name, value, created) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, created = excluded.created",
            [name, value, current_time(now)],
        )
