"""Soak test: filterdns under steady mixed load for a bounded time; RSS growth and errors.

    python bench/soak.py                  # 10 minutes at 3,000 qps (issue 7, item 6)
    python bench/soak.py --minutes 30 --qps 5000
    python bench/soak.py --smoke          # about 20 s: checks the harness works (CI runs it)

filterdns runs the benchmark's school config (``bench/configs/filterdns-school.yaml``: six
groups, schedules with term dates, safe search, 1,000,000 generated listed domains) with every
query recorded to its SQLite store and with its console and metrics on, forwarding to the
benchmark's NSD "internet" on loopback. dnsperf sends the benchmark's mixed workload (20%
listed names, blocked; 80% from a pool of allowed names) at a fixed rate (``-Q``), as one
bounded run (``-l``) per period of a minute, so errors are counted minute by minute.

Two settings differ from the benchmark's config, both so that a steady state exists:

* ``cache.max_ttl``: NSD answers every name with TTL 3600, so no allowed name would be asked
  upstream twice in a 10-minute run. Capped at 30 s (real TTLs are minutes), every allowed
  name expires and is fetched again all run long — a steady stream of cache misses — while
  the number of cached names stops changing after the first pass: the cache filling up does
  not pass for growth.
* ``metrics.listen`` and ``web.listen`` on free loopback ports: the metrics are read at every
  sample, and the console runs as it does in production without clashing with port 8080.

Measured every ``--sample-seconds`` (10): RSS and PSS of the whole process tree and its CPU
time. Per period: dnsperf's totals and rcodes, CPU %, the cache miss share. At the end: the
log's ERROR lines and the number of query events in the store.

**RSS growth** = (RSS at the end − RSS at the end of the warm-up) / RSS at the end of the
warm-up; the warm-up is the first 20% of the load. Target: under 5%.

**Errors** (any one fails the run): queries dnsperf lost (no answer within 2 s), SERVFAIL or
any rcode other than NOERROR/NXDOMAIN, ERROR/CRITICAL lines in filterdns's log, query events
the recorder dropped or the store lost, answered queries missing from the store, and the
server or dnsperf failing.

Exit codes: 0 passed; 1 errors, or growth at or above the target (``--smoke`` judges errors
only: 20 seconds say nothing about growth); 2 the setup is not supported; 77 skipped (dnsperf
or nsd missing and not installable); 130 interrupted. Results: ``bench/out/soak.json``
(``--smoke``: ``soak-smoke.json``; ``--json PATH`` to choose).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from dnsbench import dnsperf, tools
from dnsbench.dataset import MIXED_BLOCKED_SHARE, Dataset, Sizes, prepare
from dnsbench.procs import ServerDied, cpu_seconds, free_port, memory_mb, split_cpus
from dnsbench.report import table
from dnsbench.systems import FilterDns, Unsupported, internet, launch
from prometheus_client.parser import text_string_to_metric_families

BENCH_DIR = Path(__file__).resolve().parent
EXIT_FAILED, EXIT_UNSUPPORTED, EXIT_SKIPPED, EXIT_INTERRUPTED = 1, 2, 77, 130
WARMUP_SHARE = 0.2
GROWTH_TARGET_PCT = 5.0
EXPECTED_RCODES = ("NOERROR", "NXDOMAIN")
STORE_FILE = Path("data") / "filterdns.db"  # the store's default file under the run's data_dir

# (full, smoke) defaults
DEFAULTS = {
    "minutes": (10.0, 20 / 60),
    "qps": (3000, 500),
    "list_size": (1_000_000, 1_000),
    "sample_seconds": (10.0, 2.0),
    "period_seconds": (60.0, 5.0),
    "cache_max_ttl": (30, 5),
    "mixed_queries": (200_000, 2_000),
    "allowed_names": (20_000, 400),
}

# filterdns metric family -> key in a sample
METRICS = {
    "filterdns_queries": "queries",
    "filterdns_cache_hits": "cache_hits",
    "filterdns_cache_misses": "cache_misses",
    "filterdns_cache_entries": "cache_entries",
    "filterdns_upstream_errors": "upstream_errors",
    "filterdns_recorder_pending": "recorder_pending",
    "filterdns_recorder_dropped": "recorder_dropped",
    "filterdns_recorder_sink_lost_events": "sink_lost_events",
}
# "2026-01-31 10:00:00,123 ERROR   filterdns.x: ..." (the text log format) or a traceback.
_LOG_ERROR = re.compile(r"\S+ \S+ (ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    server_cpus, load_cpus = split_cpus()
    parser = argparse.ArgumentParser(description="Run filterdns under steady mixed load; report RSS growth and errors.")
    parser.add_argument("--smoke", action="store_true", help="about 20 s with a tiny list: checks the harness works")
    parser.add_argument("--minutes", type=float, help="length of the load (default 10)")
    parser.add_argument("--qps", type=int, help="fixed query rate (default 3000)")
    parser.add_argument("--list-size", type=int, help="listed domains (default 1,000,000)")
    parser.add_argument("--sample-seconds", type=float, help="RSS/CPU sampling interval (default 10)")
    parser.add_argument("--period-seconds", type=float, help="length of one dnsperf run and table row (default 60)")
    parser.add_argument("--cache-max-ttl", type=int, help="cache.max_ttl in seconds: how often allowed names miss (default 30)")
    parser.add_argument("--mixed-queries", type=int, help="lines of the mixed query file dnsperf loops over (default 200,000)")
    parser.add_argument("--allowed-names", type=int, help="distinct allowed names in it (default 20,000)")
    parser.add_argument("--seed", type=int, default=6, help="seed of every generated name and query")
    parser.add_argument("--server-cpus", default=server_cpus, help=f"taskset CPU list for filterdns (default {server_cpus})")
    parser.add_argument("--load-cpus", default=load_cpus, help=f"taskset CPU list for dnsperf and NSD (default {load_cpus})")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="generated data and run folders")
    parser.add_argument("--json", type=Path, help="results file (default OUT/soak.json, smoke: OUT/soak-smoke.json)")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install missing tools")
    args = parser.parse_args(argv)
    mode = 1 if args.smoke else 0
    for key, values in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, values[mode])
    if args.minutes <= 0 or args.qps <= 0 or args.sample_seconds <= 0 or args.period_seconds <= 0:
        parser.error("--minutes, --qps, --sample-seconds and --period-seconds must be positive")
    args.json = args.json or args.out / ("soak-smoke.json" if args.smoke else "soak.json")
    return args


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM/SIGHUP all unwind through the context managers that stop the servers.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        tools.ensure_tools(install=not args.no_install, say=say, programs=("dnsperf", "nsd"))
    except tools.MissingTools as error:
        say(f"soak test skipped: {error}")
        return EXIT_SKIPPED
    say(f"preparing {args.list_size} listed domains and the mixed query file (seed {args.seed}) ...")
    sizes = Sizes(args.list_size, hot_names=1, cold_max=1, cold_latency=1, cold_warmup=1,
                  mixed_queries=args.mixed_queries, mixed_allowed_pool=args.allowed_names, realistic_queries=0)
    dataset = prepare(args.out, sizes, args.seed, traffic=None)
    run_dir = args.out / ("soak-smoke" if args.smoke else "soak")
    load_before = os.getloadavg()[0]
    try:
        with internet(run_dir / "nsd", args.load_cpus) as upstream:
            say(f"authoritative root zone (NSD) on 127.0.0.1:{upstream.port}")
            results = soak(args, soak_filterdns(args, upstream.port, dataset), dataset.root, run_dir / "filterdns")
    except Unsupported as error:
        say(f"soak test not run: {error}")
        return EXIT_UNSUPPORTED
    except (ServerDied, TimeoutError) as error:
        say(f"soak test FAILED: filterdns did not start: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted: servers stopped")
        return EXIT_INTERRUPTED
    results["meta"]["loadavg_1min"] = {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    say("")
    say(render(results))
    say(f"\nresults: {args.json}")
    return 0 if results["passed"] else EXIT_FAILED


def soak_filterdns(args: argparse.Namespace, upstream_port: int, dataset: Dataset) -> FilterDns:
    """The school config, recording to the store, with the soak's two changes (module docstring)."""
    overrides = {
        "cache": {"max_ttl": args.cache_max_ttl},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "web": {"listen": "127.0.0.1:0"},
    }
    return FilterDns(upstream_port, dataset, record="store", extra_args="", overrides=overrides)


def soak(args: argparse.Namespace, resolver: FilterDns, data_root: Path, workdir: Path) -> dict:
    """Start filterdns, load it for ``args.minutes``, stop it; every figure in one dict. A
    server or dnsperf failure ends the load early and is reported as an error, with the
    samples taken until then."""
    workdir.mkdir(parents=True, exist_ok=True)
    resolver.cleanup(workdir)  # an interrupted run's store: count only this run's events
    prepared = resolver.prepare(workdir, with_list=True)
    metrics_url = f"http://{resolver.overrides['metrics']['listen']}/metrics"
    datafile = data_root / "queries" / "mixed.txt"
    load = dnsperf.Load(cpus=args.load_cpus)
    periods: list[dict] = []
    failure = None
    with launch(resolver.name, prepared, workdir, args.server_cpus) as server:
        pid = server.proc.pid
        startup = {"start_to_answer_s": round(server.start_to_answer_s, 2), **memory_mb(pid), **server.facts}
        say(f"filterdns on 127.0.0.1:{server.port}: answers after {startup['start_to_answer_s']} s, "
            f"RSS {startup['rss_mb']} MB; {args.qps} qps for {_duration(args.minutes)}")
        started = time.monotonic()

        def take() -> dict:
            return snapshot(pid, metrics_url, started)

        sampler = Sampler(take, args.sample_seconds)
        before = sampler.start()
        try:
            for length in period_lengths(args.minutes * 60, args.period_seconds):
                server.proc.check_alive()
                perf = dnsperf.run(server.port, datafile, load, length, once=False, max_qps=args.qps)
                after = take()
                periods.append(period_figures(len(periods) + 1, perf, before, after))
                say(progress_line(periods[-1]))
                before = after
            server.proc.check_alive()
        except (ServerDied, RuntimeError, subprocess.SubprocessError) as error:
            failure = str(error)
            say(f"FAILED: {failure}")
        finally:
            samples = sampler.stop()
    error_lines = [line for line in server.proc.log_text().splitlines() if _LOG_ERROR.match(line)]
    store = store_figures(workdir / STORE_FILE, sum(p["completed"] for p in periods))
    resolver.cleanup(workdir)
    warmup_s = WARMUP_SHARE * args.minutes * 60
    growth = rss_growth(samples, warmup_s, judged=not args.smoke)
    final = samples[-1] if samples else {}
    errors = {
        "lost_queries": sum(p["lost"] for p in periods),
        "servfail": sum(p["servfail"] for p in periods),
        "other_rcodes": sum(sum(p["unexpected_rcodes"].values()) for p in periods),
        "log_errors": len(error_lines),
        "recorder_dropped": int(final.get("recorder_dropped", 0)),
        "sink_lost_events": int(final.get("sink_lost_events", 0)),
        "events_missing": store["events_missing"],
        "failed": int(failure is not None),
    }
    total = sum(errors.values())
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "smoke": args.smoke,
            "minutes": args.minutes,
            "qps": args.qps,
            "listed_domains": args.list_size,
            "mixed_queries": args.mixed_queries,
            "allowed_names": args.allowed_names,
            "blocked_share": MIXED_BLOCKED_SHARE,
            "sample_s": args.sample_seconds,
            "period_s": args.period_seconds,
            "warmup_s": warmup_s,
            "config_overrides": resolver.overrides,
            "recording": resolver.recording,
            "dnsperf": {"version": dnsperf.version(), "clients": load.clients, "outstanding": load.outstanding,
                        "timeout_s": load.timeout_s},
            "server_cpus": args.server_cpus,
            "load_cpus": args.load_cpus,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "seed": args.seed,
        },
        "startup": startup,
        "samples": samples,
        "periods": periods,
        "growth": growth,
        "store": store,
        "errors": {**errors, "total": total, "failure": failure, "log_error_lines": error_lines[:20]},
        "passed": total == 0 and growth["met"] is not False,
    }


def period_lengths(total_s: float, period_s: float) -> list[float]:
    """``total_s`` cut into periods of ``period_s``; the last one may be shorter."""
    lengths = []
    while total_s > 1e-6:
        lengths.append(round(min(period_s, total_s), 3))
        total_s -= period_s
    return lengths


class Sampler:
    """Calls ``take`` every ``interval`` seconds on a thread, on a fixed grid (no drift), from
    ``start()`` until ``stop()``, which takes one last sample: the state at the end of the load."""

    def __init__(self, take: Callable[[], dict], interval: float):
        self._take = take
        self._interval = interval
        self._samples: list[dict] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> dict:
        """Take the first sample now (returned) and the rest on the thread."""
        self._samples.append(self._take())
        self._thread.start()
        return self._samples[0]

    def stop(self) -> list[dict]:
        self._stopping.set()
        self._thread.join()
        self._samples.append(self._take())
        return self._samples

    def _run(self) -> None:
        first = time.monotonic()
        ticks = 1
        while not self._stopping.wait(max(0.0, first + ticks * self._interval - time.monotonic())):
            self._samples.append(self._take())
            ticks += 1


def snapshot(pid: int, metrics_url: str, started: float) -> dict:
    """Memory and CPU of the process tree, and the service's own counters, at this moment."""
    sample: dict = {"t_s": round(time.monotonic() - started, 1)}
    sample.update(memory_mb(pid))
    sample["cpu_s"] = round(cpu_seconds(pid), 2)
    sample.update(read_metrics(metrics_url))
    return sample


def read_metrics(url: str) -> dict:
    """The ``METRICS`` counters from filterdns's /metrics (summed over labels)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return {"metrics_error": str(error)}
    found: dict = {}
    for family in text_string_to_metric_families(text):
        key = METRICS.get(family.name)
        if key is not None:
            found[key] = sum(s.value for s in family.samples if s.name in (family.name, family.name + "_total"))
    return found


def period_figures(index: int, perf: dnsperf.PerfResult, before: dict, after: dict) -> dict:
    """One row of the per-period table: dnsperf's view and the server's, over the period."""
    seconds = max(after["t_s"] - before["t_s"], 1e-9)
    answered = sum(perf.rcodes.values())
    hits = _delta(before, after, "cache_hits")
    misses = _delta(before, after, "cache_misses")
    return {
        "period": index,
        "from_s": before["t_s"],
        "to_s": after["t_s"],
        "sent": perf.sent,
        "completed": perf.completed,
        "lost": perf.lost,
        "qps": round(perf.qps, 1),
        "avg_latency_ms": round(perf.avg_latency_ms, 3),
        "rcodes": perf.rcodes,
        "servfail": perf.rcodes.get("SERVFAIL", 0),
        "unexpected_rcodes": {code: n for code, n in perf.rcodes.items()
                              if code not in EXPECTED_RCODES and code != "SERVFAIL"},
        "nxdomain_pct": round(100.0 * perf.rcodes.get("NXDOMAIN", 0) / answered, 1) if answered else None,
        "cache_miss_pct": round(100.0 * misses / (hits + misses), 1) if hits + misses else None,
        "upstream_errors": _delta(before, after, "upstream_errors"),
        "cpu_pct": round(100.0 * (after["cpu_s"] - before["cpu_s"]) / seconds, 1),
        "rss_mb": after["rss_mb"],
        "cache_entries": after.get("cache_entries"),
    }


def _delta(before: dict, after: dict, key: str) -> int:
    return int(after.get(key, 0) - before.get(key, 0))


def rss_growth(samples: list[dict], warmup_s: float, judged: bool) -> dict:
    """RSS at the end against RSS at the end of the warm-up (the first sample at or after
    ``warmup_s``), with the peak and a least-squares trend over the samples after it."""
    after = [s for s in samples if s["t_s"] >= warmup_s]
    if len(after) < 2:
        return {"warmup_s": warmup_s, "samples_after_warmup": len(after), "growth_pct": None,
                "target_pct": GROWTH_TARGET_PCT, "judged": judged, "met": False if judged else None}
    base, final = after[0], samples[-1]
    growth_pct = 100.0 * (final["rss_mb"] - base["rss_mb"]) / base["rss_mb"]
    return {
        "warmup_s": warmup_s,
        "samples_after_warmup": len(after),
        "baseline_t_s": base["t_s"],
        "baseline_rss_mb": base["rss_mb"],
        "final_t_s": final["t_s"],
        "final_rss_mb": final["rss_mb"],
        "peak_rss_mb": max(s["rss_mb"] for s in after),
        "growth_mb": round(final["rss_mb"] - base["rss_mb"], 1),
        "growth_pct": round(growth_pct, 2),
        "trend_mb_per_hour": round(_slope([s["t_s"] for s in after], [s["rss_mb"] for s in after]) * 3600, 1),
        "target_pct": GROWTH_TARGET_PCT,
        "judged": judged,
        "met": growth_pct < GROWTH_TARGET_PCT if judged else None,
    }


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 when the xs do not vary)."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else 0.0


def store_figures(db: Path, answered: int) -> dict:
    """Query events in the store after the service stopped (and flushed) against the answers
    dnsperf received: every answered query must have been recorded. The readiness probes are
    recorded too, so the store may hold a few more."""
    if not db.is_file():
        return {"events_recorded": None, "answered": answered, "events_missing": answered, "db_mb": None}
    with closing(sqlite3.connect(db)) as connection:
        (recorded,) = connection.execute("SELECT count(*) FROM query_events").fetchone()
    return {"events_recorded": recorded, "answered": answered, "events_missing": max(0, answered - recorded),
            "db_mb": round(db.stat().st_size / 1e6, 1)}


def progress_line(p: dict) -> str:
    return (f"  {p['from_s']:>4.0f}-{p['to_s']:.0f} s  {p['qps']:>7.0f} qps  lost {p['lost']}  "
            f"SERVFAIL {p['servfail']}  miss {_num(p['cache_miss_pct'])}%  CPU {p['cpu_pct']}%  RSS {p['rss_mb']} MB")


def render(results: dict) -> str:
    """The per-period table and the verdict, as printed at the end of a run."""
    meta, growth, errors = results["meta"], results["growth"], results["errors"]
    rows = [[str(p["period"]), f"{p['from_s']:.0f}-{p['to_s']:.0f}", f"{p['sent']:,}", f"{p['qps']:,.0f}",
             str(p["lost"]), str(p["servfail"]), str(sum(p["unexpected_rcodes"].values())), _num(p["nxdomain_pct"]),
             _num(p["cache_miss_pct"]), str(p["upstream_errors"]), _num(p["cpu_pct"]), _num(p["rss_mb"]),
             _num(p["cache_entries"], 0)]
            for p in results["periods"]]
    unit = "minute" if meta["period_s"] == 60 else "period"
    lines = [
        (f"filterdns soak — {_duration(meta['minutes'])} at {meta['qps']} qps, {meta['listed_domains']:,} listed domains, "
         f"mixed workload ({meta['blocked_share']:.0%} blocked), cache.max_ttl {meta['config_overrides']['cache']['max_ttl']} s, "
         f"recording to the {meta['recording']}, server CPUs {meta['server_cpus']}, load CPUs {meta['load_cpus']}"),
        (f"start: answers after {results['startup']['start_to_answer_s']} s, RSS {results['startup']['rss_mb']} MB"),
        "",
        table([unit, "t (s)", "sent", "qps", "lost", "SERVFAIL", "other rcodes", "NXDOMAIN %", "cache miss %",
               "upstream errors", "CPU %", "RSS MB", "cache entries"], rows),
        "",
    ]
    if growth["growth_pct"] is None:
        lines.append(f"RSS growth after warm-up: n/a ({growth['samples_after_warmup']} samples after the warm-up)")
    else:
        verdict = {True: "met", False: "NOT MET", None: "not judged (smoke)"}[growth["met"]]
        lines.append(
            f"RSS growth after warm-up ({growth['warmup_s']:.0f} s): {growth['baseline_rss_mb']} MB at "
            f"{growth['baseline_t_s']:.0f} s -> {growth['final_rss_mb']} MB at {growth['final_t_s']:.0f} s = "
            f"{growth['growth_mb']:+.1f} MB ({growth['growth_pct']:+.2f}%, target < {growth['target_pct']:g}%): {verdict}; "
            f"peak {growth['peak_rss_mb']} MB, trend {growth['trend_mb_per_hour']:+.1f} MB/h")
    store = results["store"]
    lines.append(f"store: {store['events_recorded']} query events recorded for {store['answered']} answered queries "
                 f"({store['db_mb']} MB)")
    counted = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in errors.items()
                        if key not in ("total", "failure", "log_error_lines"))
    lines.append(f"errors: {errors['total']} ({counted})")
    if errors["failure"]:
        lines.append(f"failure: {errors['failure']}")
    lines += [f"  log: {line}" for line in errors["log_error_lines"]]
    lines.append(f"result: {'PASSED' if results['passed'] else 'FAILED'}")
    return "\n".join(lines)


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _duration(minutes: float) -> str:
    return f"{minutes:g} min" if minutes >= 1 else f"{minutes * 60:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
