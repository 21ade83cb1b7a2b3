"""Starting a node: a start that fails changes nothing, nodes starting together import the
config file once, and the service does not import the web stack until it serves a console."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import yaml

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import REPO, FilterDnsProcess, base_config
from tests.test_e2e_policy_sync import node_config, store_call


def test_a_start_that_cannot_bind_writes_nothing_to_the_store(tmp_path):
    db = tmp_path / "shared.db"
    (tmp_path / "running").mkdir()
    second = tmp_path / "second"
    second.mkdir()
    with FakeUpstream() as upstream:
        with FilterDnsProcess(node_config(upstream.port, db), tmp_path / "running") as running:
            before = store_call(db, "latest_revision")
            # Same store, same port, a different policy: what a second `serve` by mistake does.
            config = node_config(upstream.port, db)
            config["server"]["listen"] = [f"127.0.0.1:{running.port}"]
            config["deny"] = ["changed-by-a-failed-start.example"]
            (second / "config.yaml").write_text(yaml.safe_dump(config))
            env = dict(os.environ, PYTHONPATH=str(REPO))
            failed = subprocess.run(
                [sys.executable, "-m", "filterdns", "serve", "-c", "config.yaml"],
                cwd=second, env=env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert failed.returncode != 0
            assert f"127.0.0.1:{running.port} is already in use — is another filterdns running?" in failed.stderr
            after = store_call(db, "latest_revision")
            assert (after.id, after.yaml_text) == (before.id, before.yaml_text)
            assert not any("applied policy revision" in line for line in running.log_lines)



def test_importing_the_service_loads_no_web_module():
    probe = "import sys, filterdns.server.service; print([m for m in sys.modules if m.startswith('filterdns.web')])"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_nodes_starting_together_import_the_config_file_once(tmp_path):
    db = tmp_path / "shared.db"
    with FakeUpstream() as upstream:
        nodes = []
        for name in "abc":
            (tmp_path / name).mkdir()
            nodes.append(FilterDnsProcess(node_config(upstream.port, db), tmp_path / name))
        starting = [threading.Thread(target=node.__enter__) for node in nodes]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        try:
            revisions = store_call(db, "list_revisions")
            assert [(r.id, r.author) for r in revisions] == [(1, "config-file")]
            assert [e.action for e in store_call(db, "list_audit")].count("policy.import") == 1
        finally:
            for node in nodes:
                node.__exit__(None, None, None)


def test_workers_do_not_join_another_filterdns_on_its_port(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "running").mkdir()
    (tmp_path / "second").mkdir()
    with FakeUpstream() as upstream:
        config = base_config(upstream.port)
        config["server"]["listen"] = [f"127.0.0.1:{port}"]
        with FilterDnsProcess(config, tmp_path / "running", extra_args=("--workers", "2")):
            (tmp_path / "second" / "config.yaml").write_text(yaml.safe_dump(config))
            env = dict(os.environ, PYTHONPATH=str(REPO))
            failed = subprocess.run(
                [sys.executable, "-m", "filterdns", "serve", "-c", "config.yaml", "--workers", "2"],
                cwd=tmp_path / "second", env=env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert failed.returncode == 1
            assert f"127.0.0.1:{port} is already in use — is another filterdns running?" in failed.stderr
            assert not (tmp_path / "second" / "data").exists()
