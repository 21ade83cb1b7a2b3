"""``filterdns serve --workers 2``: two processes answer on one port and follow one policy."""

from __future__ import annotations

import os
import signal
import time

import dns.message
import dns.query
import pytest

from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config


def worker_pids(supervisor_pid: int) -> list[int]:
    children = open(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read().split()
    return [int(pid) for pid in children]


def answers(server, name: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=server.port, timeout=3)
    return [rr.to_text() for rrset in response.answer for rr in rrset]


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.1)


def test_two_workers_share_the_port_reload_together_and_restart_when_killed(tmp_path):
    with FakeUpstream() as upstream:
        with FilterDnsProcess(base_config(upstream.port), tmp_path, extra_args=("--workers", "2")) as server:
            wait_for(lambda: len(worker_pids(server.process.pid)) == 2)
            wait_for(lambda: sum("listening for DNS" in line for line in server.log_lines) >= 2)
            # Many queries from fresh source ports land on both workers; all are answered.
            assert all(answers(server, f"w{i}.example") == [address_for(f"w{i}.example")] for i in range(40))

            config = dict(server.config, deny=["denied.example"])
            server.write_config(config)
            server.process.send_signal(signal.SIGHUP)
            wait_for(lambda: all(answers(server, "denied.example") == ["0.0.0.0"] for _ in range(20)))

            victim = worker_pids(server.process.pid)[1]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(worker_pids(server.process.pid)) == 2 and victim not in worker_pids(server.process.pid))
            assert answers(server, "after-restart.example") == [address_for("after-restart.example")]
