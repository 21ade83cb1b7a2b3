"""Store fixtures: the one place tests open stores on both backends.

For tests that must pass on SQLite and PostgreSQL alike, give the test module the fixtures
``pg_server`` and ``store_factory`` (and ``store``, unless it has a store fixture of its own)::

    from tests.support import stores

    pg_server, store_factory, store = stores.pg_server, stores.store_factory, stores.store

(pytest finds fixtures among a module's names; assigned rather than imported, because a
test's parameter of the same name would read to linters as redefining an unused import).
``store_factory(node="node-a", **settings)`` opens a store on one fresh database of the
parametrised kind: SQLite in the test's folder, or a new database on a throwaway PostgreSQL
server (one per module), skipped when PostgreSQL or asyncpg is missing. Opening it again is
how a test restarts the service, or adds another node; ``settings`` change other
``StoreConfig`` fields.

Tests of one backend only build their factory with ``open_stores``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from filterdns.store import Store, StoreConfig, open_store
from tests.support.postgres import PostgresServer, start_server

StoreFactory = Callable[..., Awaitable[Store]]


@asynccontextmanager
async def open_stores(base: StoreConfig, data_dir: Path) -> AsyncIterator[StoreFactory]:
    """A factory of stores on the one database ``base`` names, each opened as ``node`` with
    any other ``StoreConfig`` fields changed; every store it opened is closed on exit."""
    stores: list[Store] = []

    async def factory(node: str = "node-a", **settings: Any) -> Store:
        store = await open_store(dataclasses.replace(base, node=node, **settings), data_dir)
        stores.append(store)
        return store

    try:
        yield factory
    finally:
        for store in stores:
            await store.close()


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer | None]:
    """One server per module, started only when a postgres-parametrised test asks for it;
    None when PostgreSQL or asyncpg is not installed."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        yield None
        return
    server = start_server()
    yield server
    if server is not None:
        server.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    base = StoreConfig()
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        if server is None:
            pytest.skip("PostgreSQL server or asyncpg is not installed")
        base = StoreConfig(backend="postgres", dsn=await server.new_database())
    async with open_stores(base, tmp_path) as factory:
        yield factory


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    """One store (node ``node-a``) on each backend."""
    return await store_factory()
