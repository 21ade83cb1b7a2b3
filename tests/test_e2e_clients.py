"""Real clients and real failures: IPv6, dig and kdig, and a kill -9 in the middle of writing."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import dns.message
import dns.query
import pytest

from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_ipv6_listener_and_ipv6_upstream(tmp_path):
    with FakeUpstream(host="::1") as upstream:
        config = base_config(upstream.port)
        config["server"]["listen"] = ["[::1]:0"]
        config["upstream"]["servers"] = [f"[::1]:{upstream.port}"]
        with FilterDnsProcess(config, tmp_path) as server:
            port = server.ports["::1"]
            for send in (dns.query.udp, dns.query.tcp):
                response = send(dns.message.make_query("six.example", "A"), "::1", port=port, timeout=3)
                assert response.answer[0][0].to_text() == address_for("six.example")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with FakeUpstream() as upstream:
        config = base_config(upstream.port, deny=["denied.example"])
        with FilterDnsProcess(config, tmp_path_factory.mktemp("clients")) as process:
            yield process


def run(tool: str, *args: str) -> str:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=20, check=True).stdout


def test_dig_sees_answers_edns_and_the_blocking_reason(server):
    out = run("dig", "@127.0.0.1", "-p", str(server.port), "www.dig.example", "A", "+edns=0", "+tries=1")
    assert "status: NOERROR" in out and address_for("www.dig.example") in out
    flags = re.search(r"flags: ([a-z ]+);", out).group(1).split()
    assert "qr" in flags and "ra" in flags and "aa" not in flags  # never authoritative
    blocked = run("dig", "@127.0.0.1", "-p", str(server.port), "denied.example", "A", "+tries=1")
    assert "0.0.0.0" in blocked and "EDE: 15 (Blocked)" in blocked


def test_dig_any_and_badvers(server):
    out = run("dig", "@127.0.0.1", "-p", str(server.port), "any.example", "ANY", "+tries=1")
    assert "HINFO" in out and "RFC8482" in out
    badvers = run("dig", "@127.0.0.1", "-p", str(server.port), "v1.example", "A", "+edns=1", "+noednsnegotiation", "+tries=1")
    assert "status: BADVERS" in badvers and "EDNS: version: 0" in badvers


def test_kdig_over_tcp_and_dig_mixed_case(server):
    out = run("kdig", "@127.0.0.1", "-p", str(server.port), "+tcp", "www.kdig.example", "A")
    assert "NOERROR" in out and address_for("www.kdig.example") in out
    mixed = run("dig", "@127.0.0.1", "-p", str(server.port), "+tcp", "WwW.MiXeD.ExAmPlE", "A", "+tries=1")
    assert ";WwW.MiXeD.ExAmPlE." in mixed and address_for("www.mixed.example") in mixed


def test_kill_9_during_heavy_writes_leaves_a_sound_database(tmp_path):
    with FakeUpstream() as upstream:
        server = FilterDnsProcess(base_config(upstream.port), tmp_path).__enter__()
        stop = threading.Event()

        def flood() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                i = 0
                while not stop.is_set():
                    wire = dns.message.make_query(f"w{i % 500}.example", "A").to_wire()
                    try:
                        sock.sendto(wire, ("127.0.0.1", server.port))
                        while True:
                            sock.recv(4096)
                    except (BlockingIOError, ConnectionRefusedError):
                        pass
                    i += 1

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        time.sleep(3)  # several batches written
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        stop.set()
        flooder.join(timeout=5)
        with sqlite3.connect(tmp_path / "data" / "filterdns.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM query_events").fetchone()[0] > 0
        # It starts again on the same database and keeps answering and recording.
        with FilterDnsProcess(base_config(upstream.port), tmp_path) as again:
            response = dns.query.udp(dns.message.make_query("after.example", "A"), "127.0.0.1", port=again.port, timeout=3)
            assert response.answer
