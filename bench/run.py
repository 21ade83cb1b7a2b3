"""The filterdns benchmark: filterdns against unbound and dnsmasq, same list, same upstream.

    python bench/run.py            # full run: 1M listed domains, several minutes
    python bench/run.py --smoke    # seconds: tiny list, short runs (CI runs this)

See bench/README.md for what each figure means. Exit codes: 0 done, 1 a system failed,
2 the requested setup is not supported, 77 skipped (tools missing and not installable).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from dnsbench import dnsperf, report, tools
from dnsbench.dataset import DEFAULT_TRAFFIC, Sizes, prepare
from dnsbench.measure import Plan, measure_system
from dnsbench.procs import ServerDied
from dnsbench.profile import py_spy_hook, top_functions
from dnsbench.systems import (
    Dnsmasq,
    FilterDns,
    Resolver,
    Unbound,
    UnboundPython,
    Unsupported,
    internet,
)

BENCH_DIR = Path(__file__).resolve().parent
EXIT_FAILED, EXIT_UNSUPPORTED, EXIT_SKIPPED = 1, 2, 77
SYSTEMS = ("filterdns", "unbound", "unbound-python", "dnsmasq")

# (full, smoke) defaults
DEFAULTS = {
    "list_size": (1_000_000, 1_000),
    "max_rate_seconds": (10.0, 0.2),
    "latency_seconds": (5.0, 0.3),
    "warmup_cap_seconds": (120.0, 5.0),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description="Benchmark filterdns against unbound and dnsmasq on loopback.")
    parser.add_argument("--smoke", action="store_true", help="tiny list and short runs: checks the harness works")
    parser.add_argument("--list-size", type=int, help="listed domains (default 1,000,000; smoke 1,000)")
    parser.add_argument("--seed", type=int, default=6, help="seed of every generated name and query")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    parser.add_argument("--max-rate-seconds", type=float, help="length of each max-rate run (default 10)")
    parser.add_argument("--latency-qps", type=int, default=2000, help="fixed rate of the latency runs")
    parser.add_argument("--latency-seconds", type=float, help="length of each latency run (default 5)")
    parser.add_argument("--warmup-cap-seconds", type=float,
                        help="a warm-up runs its file through once, but at most this long (default 120)")
    parser.add_argument("--record", choices=("auto", "store", "jsonl"), default="auto",
                        help="filterdns records queries to its store, or to the JSON-lines query log; "
                             "auto: the store when this filterdns has a store: section")
    parser.add_argument("--filterdns-args", default="", help='extra flags for "filterdns serve", e.g. "--workers 2"')
    parser.add_argument("--server-cpus", default="0" if cpus >= 2 else None,
                        help="taskset CPU list for the servers under test (default 0)")
    parser.add_argument("--load-cpus", default=_others(cpus),
                        help="taskset CPU list for dnsperf, NSD and this script (default: the other CPUs)")
    parser.add_argument("--clients", type=int, default=8, help="dnsperf clients (source ports)")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf queries in flight at most")
    parser.add_argument("--traffic", type=Path, default=DEFAULT_TRAFFIC, help="ranked domain file for the realistic mix")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="generated data and run folders")
    parser.add_argument("--json", type=Path, help="results file (default OUT/results.json, smoke: OUT/results-smoke.json)")
    parser.add_argument("--profile", action="store_true", help="sample filterdns with py-spy during max-rate runs")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install missing tools")
    args = parser.parse_args(argv)
    mode = 1 if args.smoke else 0
    for key, values in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, values[mode])
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    args.json = args.json or args.out / ("results-smoke.json" if args.smoke else "results.json")
    return args


def sizes_for(args: argparse.Namespace) -> Sizes:
    # The latency run reads cold names once: it needs one per query it can send.
    cold_latency = math.ceil(args.latency_qps * args.latency_seconds * 1.1) + 100
    if args.smoke:
        return Sizes(args.list_size, hot_names=200, cold_max=3_000, cold_latency=cold_latency, cold_warmup=500,
                     mixed_queries=2_000, mixed_allowed_pool=400, realistic_queries=2_000)
    return Sizes(args.list_size, hot_names=10_000, cold_max=200_000, cold_latency=cold_latency, cold_warmup=5_000,
                 mixed_queries=100_000, mixed_allowed_pool=20_000, realistic_queries=200_000)


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM/SIGHUP all unwind through the context managers that stop the servers.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        tools.ensure_tools(install=not args.no_install, say=say)
    except tools.MissingTools as error:
        say(f"benchmark skipped: {error}")
        return EXIT_SKIPPED
    if args.load_cpus:
        os.sched_setaffinity(0, _cpu_set(args.load_cpus))
    started = time.time()
    load_before = os.getloadavg()
    say(f"preparing {args.list_size} listed domains and query files (seed {args.seed}) ...")
    dataset = prepare(args.out, sizes_for(args), args.seed, args.traffic)
    for note in dataset.notes:
        say(f"note: {note}")
    load = dnsperf.Load(cpus=args.load_cpus, clients=args.clients, outstanding=args.outstanding,
                        timeout_s=0.5 if args.smoke else 2.0)
    plan = Plan(args.max_rate_seconds, args.latency_qps, args.latency_seconds, args.warmup_cap_seconds,
                args.server_cpus, load)
    run_dir = args.out / "run"
    profiles: dict[str, Path] = {}
    hook = py_spy_hook(args.out / "profile", args.load_cpus, profiles) if args.profile else None
    if args.profile and hook is None:
        say("note: --profile needs py-spy (pip install py-spy); running without it")
    systems: dict[str, dict] = {}
    try:
        with internet(run_dir / "nsd", args.load_cpus) as upstream:
            say(f"authoritative root zone (NSD) on 127.0.0.1:{upstream.port}")
            for resolver in _resolvers(args, upstream.port, dataset):
                say(f"{resolver.name}:")
                try:
                    systems[resolver.name] = measure_system(resolver, dataset, plan, run_dir / resolver.name, say, hook)
                except Unsupported:
                    raise
                except (ServerDied, TimeoutError, RuntimeError, subprocess.SubprocessError) as error:
                    say(f"  {resolver.name} FAILED: {error}")
                    systems[resolver.name] = {"error": str(error)}
    except Unsupported as error:
        say(f"benchmark not run: {error}")
        return EXIT_UNSUPPORTED
    except KeyboardInterrupt:
        say("interrupted: servers stopped")
        return 130
    if profiles and "workloads" in systems.get("filterdns", {}):
        systems["filterdns"]["profile"] = {name: top_functions(path) for name, path in profiles.items()}
    results = _results(args, dataset, systems, time.time() - started, load_before[0])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    say("")
    say(report.render(results))
    _print_profiles(systems.get("filterdns", {}).get("profile", {}))
    say(f"\nresults: {args.json}")
    return EXIT_FAILED if any("error" in s for s in systems.values()) else 0


def _resolvers(args: argparse.Namespace, upstream_port: int, dataset) -> list[Resolver]:
    make = {
        "filterdns": lambda: FilterDns(upstream_port, dataset, args.record, args.filterdns_args),
        "unbound": lambda: Unbound(upstream_port, dataset),
        "unbound-python": lambda: UnboundPython(upstream_port, dataset),
        "dnsmasq": lambda: Dnsmasq(upstream_port, dataset),
    }
    return [make[name]() for name in args.systems]


def _results(args: argparse.Namespace, dataset, systems: dict, elapsed: float, load_before: float) -> dict:
    ratio_table = report.ratios(systems)
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "smoke": args.smoke,
            "seed": args.seed,
            "listed_domains": dataset.listed_domains,
            "workloads": {w.name: w.description for w in dataset.workloads},
            "systems": args.systems,
            "max_rate_s": args.max_rate_seconds,
            "latency_qps": args.latency_qps,
            "latency_s": args.latency_seconds,
            "warmup_cap_s": args.warmup_cap_seconds,
            "dnsperf": {"version": dnsperf.version(), "clients": args.clients, "outstanding": args.outstanding},
            "server_cpus": args.server_cpus,
            "load_cpus": args.load_cpus,
            "cpus": os.cpu_count(),
            "record": args.record,
            "filterdns_args": args.filterdns_args,
            "python": platform.python_version(),
            "versions": tools.versions(),
            "rmem_max": _read_int("/proc/sys/net/core/rmem_max"),
            "elapsed_s": round(elapsed, 1),
            # Other work on the machine shows here; it makes every figure noisier.
            "loadavg_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
            "data": str(dataset.root),
            "notes": list(dataset.notes),
        },
        "systems": systems,
        "ratios": ratio_table,
        # The goals are stated for a million listed domains and full-length runs.
        "targets": [] if args.smoke else report.targets(systems, ratio_table, dataset.listed_domains),
    }


def _print_profiles(profiles: dict) -> None:
    for workload, functions in profiles.items():
        say(f"\nfilterdns profile, {workload} (py-spy; % of on-CPU samples over all threads: self / total)")
        for f in functions:
            say(f"  {f['self_pct']:5.1f} {f['total_pct']:5.1f}  {f['function']}")


def _others(cpus: int) -> str | None:
    """Every CPU but the first, in taskset's syntax."""
    if cpus < 2:
        return None
    return "1" if cpus == 2 else f"1-{cpus - 1}"


def _cpu_set(spec: str) -> set[int]:
    """taskset's list syntax: "1", "0,2", "1-3"."""
    found: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
