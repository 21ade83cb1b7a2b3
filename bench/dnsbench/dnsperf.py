"""Running dnsperf and reading its report.

dnsperf prints totals (sent, completed, lost, qps, rcodes, mean latency) but no percentiles;
with ``-v`` it prints one line per answered query with its latency, from which p50/p99 are
computed here (nearest rank). ``-v`` costs dnsperf time per query, so it is only used for the
fixed-rate latency runs, never for the max-rate runs.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_TOTALS = {
    "sent": re.compile(r"Queries sent:\s+(\d+)"),
    "completed": re.compile(r"Queries completed:\s+(\d+)"),
    "lost": re.compile(r"Queries lost:\s+(\d+)"),
    "run_time": re.compile(r"Run time \(s\):\s+([\d.]+)"),
    "qps": re.compile(r"Queries per second:\s+([\d.]+)"),
    "avg_latency": re.compile(r"Average Latency \(s\):\s+([\d.]+)"),
}
_RCODES = re.compile(r"Response codes:\s+(.*)")
_RCODE_ITEM = re.compile(r"([A-Z]+) (\d+) \(")
_PER_QUERY = re.compile(r"^> \S+ \S+ \S+ ([\d.]+)$", re.MULTILINE)


@dataclass
class Load:
    """How dnsperf sends: ``clients`` source ports, at most ``outstanding`` queries in flight."""

    cpus: str | None
    clients: int = 8
    outstanding: int = 200
    timeout_s: float = 2.0


@dataclass
class PerfResult:
    sent: int
    completed: int
    lost: int
    run_time: float
    qps: float
    avg_latency_ms: float
    rcodes: dict[str, int]
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / self.sent if self.sent else 0.0

    def percentile_ms(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def run(port: int, datafile: Path, load: Load, limit_s: float, once: bool,
        max_qps: int | None = None, per_query: bool = False) -> PerfResult:
    """One bounded dnsperf run against 127.0.0.1:``port``: stops after ``limit_s`` seconds,
    or at the end of the file when ``once``."""
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(datafile), "-l", f"{limit_s:g}",
            "-c", str(load.clients), "-q", str(load.outstanding), "-t", f"{load.timeout_s:g}", "-b", "4096"]
    if once:
        argv += ["-n", "1"]
    if max_qps:
        argv += ["-Q", str(max_qps)]
    if per_query:
        argv.append("-v")
    if load.cpus and shutil.which("taskset"):
        argv = ["taskset", "-c", load.cpus, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit_s + load.timeout_s + 60, check=False)
    if done.returncode != 0 or "Statistics:" not in done.stdout:
        raise RuntimeError(f"dnsperf failed ({done.returncode}): {done.stderr.strip() or done.stdout[-2000:]}")
    return parse(done.stdout, per_query)


def parse(text: str, per_query: bool) -> PerfResult:
    values: dict[str, float] = {}
    for key, pattern in _TOTALS.items():
        match = pattern.search(text)
        values[key] = float(match.group(1)) if match else 0.0
    rcodes: dict[str, int] = {}
    match = _RCODES.search(text)
    if match:
        rcodes = {code: int(count) for code, count in _RCODE_ITEM.findall(match.group(1))}
    latencies = [float(m) * 1000.0 for m in _PER_QUERY.findall(text)] if per_query else []
    return PerfResult(
        sent=int(values["sent"]),
        completed=int(values["completed"]),
        lost=int(values["lost"]),
        run_time=values["run_time"],
        qps=values["qps"],
        avg_latency_ms=values["avg_latency"] * 1000.0,
        rcodes=rcodes,
        latencies_ms=latencies,
    )


def version() -> str:
    done = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True, timeout=10, check=False)
    match = re.search(r"Version (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"
