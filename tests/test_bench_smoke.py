"""The benchmark harness must not rot: its smoke mode (tiny list, sub-second runs) runs every
system and workload end to end on loopback and writes a complete results file.

No performance is asserted here (figures depend on the machine); what is checked is that
every system answered every workload, and that all three block the same share of the mixed
workload, which is what makes their figures comparable. The harness exits 77 when dnsperf,
unbound, dnsmasq or nsd are missing and cannot be installed (not root): the test skips then.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAFFIC = REPO.parent / "shared" / "data" / "traffic" / "top-domains.txt"
SYSTEMS = {"filterdns", "unbound", "unbound-python", "dnsmasq"}
EXIT_SKIPPED = 77


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    if done.returncode == EXIT_SKIPPED:
        pytest.skip(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "max qps" in done.stdout  # the table was printed
    return json.loads((out / "results-smoke.json").read_text())


def test_every_system_answers_every_workload(smoke):
    expected = {"hot", "cold", "mixed"} | ({"realistic"} if TRAFFIC.is_file() else set())
    assert set(smoke["meta"]["workloads"]) == expected
    assert set(smoke["systems"]) == SYSTEMS
    for name, system in smoke["systems"].items():
        assert "error" not in system, system.get("error")
        assert set(system["workloads"]) == expected, name
        for workload, figures in system["workloads"].items():
            assert figures["max"]["qps"] > 0, (name, workload)
            assert figures["max"]["completed"] > 0, (name, workload)
            assert figures["latency"]["samples"] > 0, (name, workload)
            assert figures["latency"]["p50_ms"] <= figures["latency"]["p99_ms"], (name, workload)


def test_systems_block_alike(smoke):
    """About 20% of the mixed queries are listed: each system answers those NXDOMAIN, and the
    hot (allowed) names are never blocked."""
    for name, system in smoke["systems"].items():
        mixed = system["workloads"]["mixed"]["max"]["rcodes"]
        share = mixed.get("NXDOMAIN", 0) / sum(mixed.values())
        assert 0.15 < share < 0.25, (name, mixed)
        assert "NXDOMAIN" not in system["workloads"]["hot"]["max"]["rcodes"], name


def test_memory_and_load_figures_present(smoke):
    for name, system in smoke["systems"].items():
        assert system["memory"]["rss_idle_mb"] > 0, name
        assert system["memory"]["rss_after_load_mb"] > 0, name
        assert system["load"]["start_to_answer_s"] > 0, name
    # Every generated domain, plus the few inline ones of the school config's small categories.
    assert smoke["systems"]["filterdns"]["load"]["listed_domains_loaded"] >= smoke["meta"]["listed_domains"]
    assert set(smoke["ratios"]) == {"unbound", "unbound-python", "dnsmasq"}
