"""The data directory is for the service's user only: 0700, and its files 0600, whether the
service makes them or finds them made by an older version (then it warns once and fixes
them). Real SQLite files, a real ``filterdns serve``."""

from __future__ import annotations

import logging
import sqlite3
import stat
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from filterdns.private_files import private_tree
from filterdns.store import StoreConfig, open_store
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import FilterDnsProcess, base_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def open_to_everyone(data: Path) -> None:
    """A data directory as versions before this one left it: 0755 and 0644."""
    (data / "lists").mkdir(parents=True)
    sqlite3.connect(data / "filterdns.db").close()
    (data / "lists" / "copy-1234").write_text("a.example\n")
    for path in (data, data / "lists"):
        path.chmod(0o755)
    for path in (data / "filterdns.db", data / "lists" / "copy-1234"):
        path.chmod(0o644)


async def test_a_new_store_is_private(tmp_path: Path):
    data = tmp_path / "data"
    store = await open_store(StoreConfig(node="n"), data)
    try:
        await store.create_user("ada", "admin", "hash")
    finally:
        await store.close()
    assert mode(data) == 0o700
    assert mode(data / "filterdns.db") == 0o600
    assert all(mode(p) == 0o600 for p in data.glob("filterdns.db*"))


async def test_an_open_database_file_is_closed_when_the_store_opens_it(tmp_path: Path, caplog):
    open_to_everyone(tmp_path)
    with caplog.at_level(logging.WARNING):
        store = await open_store(StoreConfig(node="n"), tmp_path)
        try:
            await store.list_users()
        finally:
            await store.close()
    assert mode(tmp_path / "filterdns.db") == 0o600
    assert any("filterdns.db could be used by other local users (mode 644)" in r.getMessage() for r in caplog.records)


def test_the_tree_is_closed_once_with_one_warning(tmp_path: Path, caplog):
    data = tmp_path / "data"
    open_to_everyone(data)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)
    with caplog.at_level(logging.WARNING):
        assert private_tree(data) == 3
        assert private_tree(data) == 0
    assert [mode(p) for p in (data, data / "lists", data / "filterdns.db", data / "lists" / "copy-1234")] == [
        0o700, 0o700, 0o600, 0o600,
    ]  # fmt: skip
    assert mode(outside) == 0o644  # a symlink is not followed out of the folder
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "files and folders in" in w]) == 1


def test_serve_makes_and_keeps_its_data_private(tmp_path: Path):
    data = tmp_path / "data"
    open_to_everyone(data)
    with FakeUpstream() as upstream:
        config = base_config(upstream.port, log={"level": "info", "query_log": "logs/queries.jsonl"})
        with FilterDnsProcess(config, tmp_path) as server:
            dns.query.udp(dns.message.make_query("private.example", "A"), "127.0.0.1", port=server.port, timeout=3)
            query_log = tmp_path / "logs" / "queries.jsonl"
            deadline = time.monotonic() + 10
            while not query_log.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
    assert mode(data) == 0o700 and mode(data / "lists") == 0o700
    assert {p.name: mode(p) for p in data.glob("filterdns.db*")}["filterdns.db"] == 0o600
    assert all(mode(p) == 0o600 for p in data.glob("filterdns.db*"))
    assert mode(query_log) == 0o600
    assert any("could be read by other local users" in line for line in server.log_lines)


def test_a_file_gone_meanwhile_does_not_stop_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Another worker's download renames its part file while this one looks at the folder."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: iter([data / "lists" / "copy.part"]))
    assert private_tree(data) == 0
