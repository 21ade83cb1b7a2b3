"""What a feature's store mixin (``outbox``, ``alerts``) may use of the backend.

``Store`` is assembled from the core operations in ``base`` and one mixin per feature, so
that each feature's SQL sits in a small module of its own. The mixins only declare the
backend primitives here; ``Store`` provides them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from filterdns.config.model import StoreConfig

Row = dict[str, Any]


class FeatureQueries:
    """Base of the feature mixins: the backend primitives they call, declared for typing."""

    node: str
    settings: StoreConfig
    _query: Callable[[str, Sequence[Any]], Awaitable[list[Row]]]
    _execute: Callable[[str, Sequence[Any]], Awaitable[int]]
