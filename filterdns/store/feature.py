"""What a feature's store mixin (``outbox``, ``alerts``) may use of the backend.

``Store`` is assembled from the core operations in ``base`` and one mixin per feature, so
that each feature's SQL sits in a small module of its own. The mixins only declare the
backend primitives here; ``Store`` provides them. What the features' queries have in common
is built on them here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from filterdns.config.model import StoreConfig

Row = dict[str, Any]


class FeatureQueries:
    """Base of the feature mixins: the backend primitives they call, declared for typing,
    and the query shapes they share."""

    node: str
    settings: StoreConfig
    _query: Callable[[str, Sequence[Any]], Awaitable[list[Row]]]
    _execute: Callable[[str, Sequence[Any]], Awaitable[int]]

    async def _newest_first(
        self, select: str, clauses: Sequence[str], params: Sequence[Any], *, limit: int, before_id: int | None
    ) -> list[Row]:
        """A console listing: the rows of ``select`` (``SELECT ... FROM table``) meeting all
        ``clauses``, newest (highest id) first, ``limit`` of them. Paging back goes by id
        (``before_id``) rather than by offset, so rows added meanwhile do not shift pages."""
        if before_id is not None:
            clauses, params = [*clauses, "id < ?"], [*params, before_id]
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return await self._query(f"{select}{where} ORDER BY id DESC LIMIT ?", [*params, limit])
