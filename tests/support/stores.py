"""Fixtures for tests that must pass on both store backends: import ``pg_server`` and
``store_factory`` into a test module. ``store_factory(node)`` opens a store on one fresh
database of the parametrised kind (SQLite in the test's folder, or a new database on a
throwaway PostgreSQL server, skipped when PostgreSQL or asyncpg is missing); opening it
again is how a test restarts the service, or adds another node."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from filterdns.store import Store, StoreConfig, open_store
from tests.support.postgres import PostgresServer, start_server

StoreFactory = Callable[..., Awaitable[Store]]


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer | None]:
    """Started only when a postgres-parametrised test asks for it."""
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
    if request.param == "sqlite":
        def settings(node: str) -> StoreConfig:
            return StoreConfig(node=node)
    else:
        server = request.getfixturevalue("pg_server")
        if server is None:
            pytest.skip("PostgreSQL server or asyncpg is not installed")
        import asyncpg

        name = f"test_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

        def settings(node: str) -> StoreConfig:
            return StoreConfig(backend="postgres", dsn=server.dsn(name), node=node)

    stores: list[Store] = []

    async def factory(node: str = "node-a") -> Store:
        store = await open_store(settings(node), tmp_path)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.close()
