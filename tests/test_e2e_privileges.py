"""Binding a privileged port as root, then running as an unprivileged user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind a port below 1024")


def free_privileged_port() -> int:
    for port in range(700, 1000):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    pytest.skip("no free port below 1024")


@pytest.fixture
def workdir():
    """A folder the unprivileged user can reach (pytest's own tmp root is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="filterdns-priv-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_drops_to_the_configured_user_after_binding(workdir):
    tmp_path = workdir
    user = pwd.getpwnam("nobody")
    port = free_privileged_port()
    with FakeUpstream() as upstream:
        config = base_config(upstream.port, log={"level": "info", "query_log": "data/queries.jsonl"})
        config["server"]["listen"] = [f"127.0.0.1:{port}"]
        config["server"]["user"] = "nobody"
        with FilterDnsProcess(config, tmp_path) as server:
            status = open(f"/proc/{server.process.pid}/status").read()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            assert set(map(int, uids)) == {user.pw_uid}
            response = dns.query.udp(dns.message.make_query("priv.example", "A"), "127.0.0.1", port=port, timeout=3)
            assert response.answer[0][0].to_text() == address_for("priv.example")
    assert (tmp_path / "data").stat().st_uid == user.pw_uid
    assert "priv.example" in (tmp_path / "data" / "queries.jsonl").read_text()
