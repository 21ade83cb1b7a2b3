"""The persistent store: query events, hourly counts, console users, policy revisions,
audit log, overrides and review requests — in SQLite (embedded, the default) or in a
PostgreSQL database shared by several resolver nodes."""

from __future__ import annotations

from pathlib import Path

from filterdns.config.model import StoreConfig
from filterdns.store.alerts import Alert
from filterdns.store.audit import AuditEntry, AuditFilter
from filterdns.store.base import DAY, HOUR, Conflict, Health, Row, StoreError
from filterdns.store.events import EventFilter, EventPage
from filterdns.store.outbox import OutboxMessage
from filterdns.store.parents import ParentProfile
from filterdns.store.policy import Override, OverrideKind, Revision
from filterdns.store.reviews import ParentNote, ReviewRequest
from filterdns.store.sink import StoreSink
from filterdns.store.store import Store
from filterdns.store.users import ApiToken, Role, Session, User

DEFAULT_SQLITE_FILE = "filterdns.db"


def create_store(settings: StoreConfig, data_dir: Path) -> Store:
    """The store the settings ask for, not yet connected: it connects on first use, so a
    resolver can start (and buffer events) while its database is unavailable."""
    if settings.backend == "postgres":
        # Imported here so that asyncpg is only needed by those who use PostgreSQL.
        from filterdns.store.postgres import PostgresStore

        return PostgresStore(settings)
    from filterdns.store.sqlite import SQLiteStore

    return SQLiteStore(settings, sqlite_file(settings, data_dir))


def sqlite_file(settings: StoreConfig, data_dir: Path) -> Path:
    """The SQLite database the settings point at (``store.path`` is relative to data_dir)."""
    return Path(data_dir) / (settings.path or DEFAULT_SQLITE_FILE)


async def open_store(settings: StoreConfig, data_dir: Path) -> Store:
    """The store the settings ask for, connected and migrated; ``StoreError`` if the
    database cannot be reached."""
    store = create_store(settings, data_dir)
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store


__all__ = [
    "DAY", "HOUR", "Alert", "ApiToken", "AuditEntry", "AuditFilter", "Conflict", "EventFilter",
    "EventPage", "Health", "OutboxMessage", "Override", "OverrideKind", "ParentNote", "ParentProfile", "ReviewRequest",
    "Revision", "Role", "Row", "Session", "Store", "StoreError", "StoreConfig", "StoreSink", "User",
    "create_store", "open_store", "sqlite_file",
]
