"""Policy revisions and overrides in the store reach every resolver node within a second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dns.message
import dns.query
import pytest
import yaml

from filterdns.config.model import StoreConfig
from filterdns.store import open_store
from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config

CLIENT = "127.0.0.2"


def node_config(upstream_port: int, db: Path) -> dict:
    return base_config(
        upstream_port,
        store={"path": str(db)},
        categories={"games": {"description": "Games", "domains": ["games.example"]}},
        groups={"pupils": {"networks": ["127.0.0.0/8"], "block": []}},
    )


def a_records(server, name: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=server.port, timeout=3, source=CLIENT)
    return [rr.to_text() for rrset in response.answer for rr in rrset]


def wait_for(predicate, timeout: float = 1.5) -> float:
    """Seconds until ``predicate()`` holds; fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def store_call(db: Path, method: str, *args, **kwargs):
    async def run():
        store = await open_store(StoreConfig(path=db, node="test"), db.parent)
        try:
            return await getattr(store, method)(*args, **kwargs)
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.fixture
def two_nodes(tmp_path):
    db = tmp_path / "shared.db"
    with FakeUpstream() as upstream:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with FilterDnsProcess(node_config(upstream.port, db), tmp_path / "a") as a:
            with FilterDnsProcess(node_config(upstream.port, db), tmp_path / "b") as b:
                yield a, b, db


def test_a_new_revision_reaches_both_nodes_within_a_second(two_nodes):
    a, b, db = two_nodes
    assert a_records(a, "www.games.example") == [address_for("www.games.example")]
    latest = store_call(db, "latest_revision")
    document = yaml.safe_load(latest.yaml_text)
    document["groups"]["pupils"]["block"] = ["games"]
    store_call(db, "add_revision", yaml.safe_dump(document), "admin", "games off")
    wait_for(lambda: a_records(a, "www.games.example") == ["0.0.0.0"])
    wait_for(lambda: a_records(b, "www.games.example") == ["0.0.0.0"])


def test_an_override_applies_at_once_and_expires_by_itself(two_nodes):
    a, b, db = two_nodes
    expires = time.time() + 2.5
    store_call(db, "add_override", "pupils", "block", domain="fun.example", created_by="teacher", expires_at=expires)
    wait_for(lambda: a_records(a, "www.fun.example") == ["0.0.0.0"])
    wait_for(lambda: a_records(b, "www.fun.example") == ["0.0.0.0"])
    wait_for(lambda: time.time() > expires, timeout=4)
    wait_for(lambda: a_records(a, "www.fun.example") == [address_for("www.fun.example")], timeout=0.5)


def test_the_config_file_policy_is_imported_once_and_console_edits_survive_restarts(tmp_path):
    db = tmp_path / "store.db"
    with FakeUpstream() as upstream:
        config = node_config(upstream.port, db)
        with FilterDnsProcess(config, tmp_path) as node:
            first = store_call(db, "latest_revision")
            assert first.author == "config-file"
            document = yaml.safe_load(first.yaml_text)
            document["deny"] = ["edited.example"]
            store_call(db, "add_revision", yaml.safe_dump(document), "admin", "console edit")
            wait_for(lambda: a_records(node, "edited.example") == ["0.0.0.0"])
        # Restart with the same file: the console's edit stays in force, nothing re-imported.
        with FilterDnsProcess(config, tmp_path) as node:
            assert a_records(node, "edited.example") == ["0.0.0.0"]
            assert store_call(db, "latest_revision").author == "admin"
            # The file changes and SIGHUP: imported as a new revision, and audited.
            config["deny"] = ["from-file.example"]
            node.write_config(config)
            node.reload()
            assert a_records(node, "from-file.example") == ["0.0.0.0"]
            latest = store_call(db, "latest_revision")
            assert latest.author == "config-file" and "from-file.example" in latest.yaml_text
            actions = [entry.action for entry in store_call(db, "list_audit")]
            assert actions.count("policy.import") == 2


def test_dns_keeps_answering_when_the_store_is_unreachable(tmp_path):
    with FakeUpstream() as upstream:
        config = node_config(upstream.port, tmp_path / "missing-dir" / "x" / "store.db")
        config["store"] = {"backend": "postgres", "dsn": "postgresql://nobody@127.0.0.1:1/none"}
        with FilterDnsProcess(config, tmp_path) as node:
            assert a_records(node, "still.example") == [address_for("still.example")]
            assert any("starting with the policy in the config file" in line for line in node.log_lines)


def test_policy_export_writes_the_revision_in_force(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "store.db"
    with FakeUpstream() as upstream:
        config = node_config(upstream.port, db)
        with FilterDnsProcess(config, tmp_path):
            document = yaml.safe_load(store_call(db, "latest_revision").yaml_text)
            document["deny"] = ["exported.example"]
            revision = store_call(db, "add_revision", yaml.safe_dump(document), "admin", "for export")
    out = tmp_path / "policy.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "filterdns", "policy", "export", "-c", str(tmp_path / "config.yaml"), "-o", str(out)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith(f"# policy revision {revision},") and "by admin: for export" in text.splitlines()[0]
    assert yaml.safe_load(text)["deny"] == ["exported.example"]
