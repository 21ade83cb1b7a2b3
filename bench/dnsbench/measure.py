"""Measuring one resolver: start-up, memory, and every workload.

Per system, in this order:

1. start it with the *empty* list (same config, list files empty), note load time and RSS,
   stop it: the baseline that "memory for the list" is measured against;
2. start it with the full list: load time (process start until it answers a probe), RSS idle;
3. per workload: a warm-up that runs the workload's warm-up file through once (capped at
   ``warmup_cap_s``), a max-rate run (dnsperf unthrottled; the server's CPU time is read
   around it), and a fixed-rate run at ``latency_qps`` with per-query latencies for p50/p99;
4. reloads under load (filterdns): a fixed-rate run on the hot workload during which the
   lists are rebuilt, and another during which the policy changes; the worst latency and the
   losses of those runs show any stall (issue 6: never more than 50 ms);
5. RSS after all the load, then stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnsbench import dnsperf
from dnsbench.dataset import Dataset, Workload
from dnsbench.procs import cpu_seconds, memory_mb
from dnsbench.systems import Resolver, Running, launch


@dataclass(frozen=True)
class Plan:
    max_rate_s: float
    latency_qps: int
    latency_s: float
    warmup_cap_s: float
    server_cpus: str | None
    load: dnsperf.Load


SUSTAINED_SHARE = 0.95

# Called around each max-rate run with (system name, workload name, server pid, seconds);
# returns a function to call when the run is over (used by --profile).
MaxRunHook = Callable[[str, str, int, float], Callable[[], None]]


def measure_system(system: Resolver, dataset: Dataset, plan: Plan, workdir: Path, say: Callable[[str], None],
                   max_run_hook: MaxRunHook | None = None) -> dict:
    empty_dir, full_dir = workdir / "empty-list", workdir / "full-list"
    empty_dir.mkdir(parents=True, exist_ok=True)
    full_dir.mkdir(parents=True, exist_ok=True)

    with launch(system.name, system.prepare(empty_dir, with_list=False), empty_dir, plan.server_cpus) as server:
        empty = {"start_to_answer_s": round(server.start_to_answer_s, 3), **memory_mb(server.proc.pid)}
    system.cleanup(empty_dir)
    say(f"  {system.name}: empty list answers after {empty['start_to_answer_s']:.2f} s, RSS {empty['rss_mb']} MB")

    result: dict = {}
    with launch(system.name, system.prepare(full_dir, with_list=True), full_dir, plan.server_cpus) as server:
        idle = memory_mb(server.proc.pid)
        result["setup"] = system.setup()
        result["load"] = {"start_to_answer_s": round(server.start_to_answer_s, 3),
                          "empty_list_start_to_answer_s": empty["start_to_answer_s"],
                          "list_load_s": round(server.start_to_answer_s - empty["start_to_answer_s"], 3),
                          **server.facts}
        say(f"  {system.name}: {dataset.listed_domains} listed domains, answers after "
            f"{server.start_to_answer_s:.2f} s, RSS {idle['rss_mb']} MB")
        result["workloads"] = {}
        for workload in dataset.workloads:
            server.proc.check_alive()
            result["workloads"][workload.name] = _measure_workload(system.name, server.port, server.proc.pid, workload,
                                                                   plan, max_run_hook)
            say(_summary_line(system.name, workload.name, result["workloads"][workload.name]))
        reloads = system.reloads(server, full_dir)
        if reloads:
            result["reloads"] = _measure_reloads(system, server, dataset.workloads[0], plan, reloads)
            for name, figures in result["reloads"].items():
                say(f"    {system.name:<9} reload {name:<7} worst {figures['max_ms']} ms  "
                    f"p99.9 {figures['p999_ms']} ms  loss {figures['loss_pct']:.2f}%  done: {figures['finished']}")
        server.proc.check_alive()
        after = memory_mb(server.proc.pid)
    system.cleanup(full_dir)
    result["memory"] = {
        "rss_empty_list_mb": empty["rss_mb"],
        "rss_idle_mb": idle["rss_mb"],
        "pss_idle_mb": idle["pss_mb"],
        "rss_after_load_mb": after["rss_mb"],
        "pss_after_load_mb": after["pss_mb"],
        "processes": after["processes"],
        "list_mb": round(idle["rss_mb"] - empty["rss_mb"], 1),
    }
    return result


def _warm_up(port: int, datafile: Path, plan: Plan) -> dict:
    """Fill the caches with the workload's answers; the first queries also pay for lazy
    imports, socket buffers and upstream sockets, which are not to be measured."""
    with open(datafile, "rb") as lines:
        names = sum(1 for _ in lines)
    run = dnsperf.run(port, datafile, plan.load, plan.warmup_cap_s, once=True)
    return {"queries": names, "sent": run.sent, "complete": run.sent >= names, "run_time_s": round(run.run_time, 2)}


def _measure_workload(system: str, port: int, pid: int, workload: Workload, plan: Plan,
                      max_run_hook: MaxRunHook | None) -> dict:
    warm = _warm_up(port, workload.warmup, plan)
    finish = max_run_hook(system, workload.name, pid, plan.max_rate_s) if max_run_hook else None
    cpu_before = cpu_seconds(pid)
    try:
        peak = dnsperf.run(port, workload.measure, plan.load, plan.max_rate_s, once=workload.once)
    finally:
        if finish is not None:
            finish()
    cpu = cpu_seconds(pid) - cpu_before
    fixed = dnsperf.run(port, workload.latency, plan.load, plan.latency_s, once=workload.once,
                        max_qps=plan.latency_qps, per_query=True)
    return {
        "warmup": warm,
        "max": {
            "qps": round(peak.qps, 1),
            "loss_pct": round(peak.loss_pct, 3),
            "sent": peak.sent,
            "completed": peak.completed,
            "run_time_s": round(peak.run_time, 3),
            "server_cpu_s": round(cpu, 3),
            "cpu_us_per_query": round(1e6 * cpu / peak.completed, 1) if peak.completed else None,
            "rcodes": peak.rcodes,
        },
        "latency": {
            "target_qps": plan.latency_qps,
            "qps": round(fixed.qps, 1),
            # Below the target rate the server could not keep up: latency is then queueing.
            "sustained": fixed.qps >= SUSTAINED_SHARE * plan.latency_qps,
            "loss_pct": round(fixed.loss_pct, 3),
            "samples": len(fixed.latencies_ms),
            "p50_ms": _round(fixed.percentile_ms(50)),
            "p99_ms": _round(fixed.percentile_ms(99)),
            "p999_ms": _round(fixed.percentile_ms(99.9)),
            "max_ms": _round(max(fixed.latencies_ms, default=None)),
            "rcodes": fixed.rcodes,
        },
    }


STALL_MS = 50.0


def _measure_reloads(system: Resolver, server: Running, workload: Workload, plan: Plan,
                     reloads: dict[str, Callable[[], None]]) -> dict:
    """One fixed-rate run per kind of reload, started a fifth of the way in. The reload must
    finish within the run for the figures to count (``finished``)."""
    length = max(plan.latency_s, 8.0) if plan.latency_s >= 1 else 2.0
    figures = {}
    for name, trigger in reloads.items():
        before = system.reload_count(server)
        outcome: dict = {}
        load = threading.Thread(target=lambda: outcome.setdefault("run", dnsperf.run(
            server.port, workload.latency, plan.load, length, once=False, max_qps=plan.latency_qps, per_query=True)))
        load.start()
        time.sleep(length / 5)
        trigger()
        load.join()
        server.proc.check_alive()
        run = outcome["run"]
        figures[name] = {
            "finished": system.reload_count(server) > before,
            "run_s": length,
            "qps": round(run.qps, 1),
            "loss_pct": round(run.loss_pct, 3),
            "p99_ms": _round(run.percentile_ms(99)),
            "p999_ms": _round(run.percentile_ms(99.9)),
            "max_ms": _round(max(run.latencies_ms, default=None)),
            f"over_{STALL_MS:g}ms": sum(latency > STALL_MS for latency in run.latencies_ms),
        }
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _summary_line(system: str, workload: str, figures: dict) -> str:
    peak, fixed = figures["max"], figures["latency"]
    return (f"    {system:<9} {workload:<9} {peak['qps']:>9.0f} qps  loss {peak['loss_pct']:.2f}%  "
            f"{peak['cpu_us_per_query']} µs/q  p50 {fixed['p50_ms']} ms  p99 {fixed['p99_ms']} ms")
