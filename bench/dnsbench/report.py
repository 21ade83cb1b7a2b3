"""Ratios, the targets of issue 6, and the printed tables.

Every ratio is literally ``filterdns / reference`` for the same figure in the same run, so
its good direction is that of the figure: qps wants ≥ 1, CPU per query, p99, memory and load
time want ≤ 1.
"""

from __future__ import annotations

FILTERDNS = "filterdns"
GENERATOR_BOUND_QPS = 100_000  # above this dnsperf on one core is the limit (see README)

# (workload, figure, operator, threshold) against unbound, from issue 6.
QPS_TARGETS = (("hot", 1.0), ("mixed", 1.0), ("cold", 2.0))
LIST_MEMORY_TARGET_MB = 60.0
LOAD_TARGET_S_PER_MILLION = 1.5
RELOAD_STALL_MS = 50.0  # issue 6: a reload never stalls answers longer than this


def ratios(systems: dict) -> dict:
    """``{reference: {workload: {qps, cpu_per_query, p99}}}`` plus memory and load ratios."""
    mine = systems.get(FILTERDNS)
    if not mine or "workloads" not in mine:
        return {}
    out: dict = {}
    for name, ref in systems.items():
        if name == FILTERDNS or "workloads" not in ref:
            continue
        per_workload = {}
        for workload, figures in mine["workloads"].items():
            theirs = ref["workloads"].get(workload)
            if theirs is None:
                continue
            per_workload[workload] = {
                "qps": _ratio(figures["max"]["qps"], theirs["max"]["qps"]),
                "cpu_per_query": _ratio(figures["max"]["cpu_us_per_query"], theirs["max"]["cpu_us_per_query"]),
                "p99": _ratio(figures["latency"]["p99_ms"], theirs["latency"]["p99_ms"]),
            }
        out[name] = {
            "workloads": per_workload,
            "list_mb": _ratio(mine["memory"]["list_mb"], ref["memory"]["list_mb"]),
            "rss_after_load": _ratio(mine["memory"]["rss_after_load_mb"], ref["memory"]["rss_after_load_mb"]),
            "start_to_answer": _ratio(mine["load"]["start_to_answer_s"], ref["load"]["start_to_answer_s"]),
            "list_load": _ratio(mine["load"]["list_load_s"], ref["load"]["list_load_s"]),
        }
    return out


def targets(systems: dict, ratio_table: dict, listed_domains: int) -> list[dict]:
    """Issue 6's goals, each with the measured value and whether it is met."""
    mine = systems.get(FILTERDNS)
    vs_unbound = ratio_table.get("unbound", {}).get("workloads", {})
    found: list[dict] = []
    for workload, minimum in QPS_TARGETS:
        value = vs_unbound.get(workload, {}).get("qps")
        found.append(_target(f"{workload} qps vs unbound", value, ">=", minimum))
    for workload, figures in vs_unbound.items():
        found.append(_target(f"{workload} p99 at fixed rate vs unbound", figures["p99"], "<=", 1.0))
    if mine and "memory" in mine:
        found.append(_target("memory for the list (MB, RSS minus empty-list RSS)", mine["memory"]["list_mb"], "<=",
                             LIST_MEMORY_TARGET_MB * max(listed_domains, 1) / 1e6))
        # The service's own timing when its log has it, else what the list adds to start-up.
        logged = mine["load"].get("lists_loaded_s")
        loaded, source = (logged, "from the log") if logged is not None else (mine["load"]["list_load_s"], "start-up")
        if listed_domains:
            found.append(_target(f"list load (s per million domains, {source})",
                                 round(loaded * 1e6 / listed_domains, 3), "<=", LOAD_TARGET_S_PER_MILLION))
    for kind, figures in (mine or {}).get("reloads", {}).items():
        target = _target(f"worst answer during a {kind} reload under load (ms)", figures["max_ms"], "<=",
                         RELOAD_STALL_MS)
        if not figures["finished"]:
            target["met"] = None  # the reload took longer than the run: nothing was measured
        elif figures["loss_pct"]:
            target["met"] = False  # a lost query waited longer than any latency
        found.append(target)
    return found


def _target(what: str, value: float | None, op: str, threshold: float) -> dict:
    met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
    return {"what": what, "value": value, "target": f"{op} {threshold:g}", "met": met}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def render(results: dict) -> str:
    """The tables printed at the end of a run."""
    meta, systems = results["meta"], results["systems"]
    lines = [
        (f"filterdns benchmark — {meta['listed_domains']} listed domains, max-rate runs of {meta['max_rate_s']:g} s, "
         f"latency at {meta['latency_qps']} qps for {meta['latency_s']:g} s, server CPUs {meta['server_cpus']}, "
         f"load CPUs {meta['load_cpus']}, load average {meta['loadavg_1min']['start']} -> {meta['loadavg_1min']['end']}"),
        "",
        table(
            ["system", "workload", "max qps", "loss %", "NXDOMAIN %", "CPU µs/q", f"p50 ms@{meta['latency_qps']}",
             f"p99 ms@{meta['latency_qps']}", "lat loss %", "RSS MB", "load s"],
            _workload_rows(systems),
        ),
        "",
        table(
            ["system", "RSS empty list", "RSS idle", "list MB", "RSS after load", "PSS after load", "processes",
             "load s", "empty-list load s", "list load s", "lists loaded s (log)"],
            _memory_rows(systems),
        ),
    ]
    ratio_table = results.get("ratios", {})
    if ratio_table:
        workloads = list(next(iter(ratio_table.values()))["workloads"])
        lines += ["", "filterdns / reference per workload (qps: higher is better; CPU per query, p99: lower is better)",
                  table(["reference", "figure", *workloads], _ratio_rows(ratio_table, workloads)),
                  "", "filterdns / reference overall (lower is better)",
                  table(["reference", "list MB", "RSS after load", "load s", "list load s"], [
                      [ref, _fmt(t["list_mb"], 2), _fmt(t["rss_after_load"], 2), _fmt(t["start_to_answer"], 2),
                       _fmt(t["list_load"], 2)]
                      for ref, t in ratio_table.items()
                  ])]
    if results.get("targets"):
        lines += ["", "issue 6 targets", table(["target", "value", "goal", "met"], [
            [t["what"], _fmt(t["value"]), t["target"], {True: "yes", False: "NO", None: "n/a"}[t["met"]]]
            for t in results["targets"]
        ])]
    overloaded = [f"{s}/{w} ({f['latency']['qps']:.0f} qps)" for s, fig in systems.items()
                  for w, f in fig.get("workloads", {}).items() if not f["latency"]["sustained"]]
    if overloaded:
        lines += ["", f"* could not sustain {meta['latency_qps']} qps, so its latency is mostly queueing: "
                      + ", ".join(overloaded)]
    unwarmed = [f"{s}/{w}" for s, fig in systems.items() for w, f in fig.get("workloads", {}).items()
                if not f["warmup"]["complete"]]
    if unwarmed:
        lines += [f"note: warm-up stopped at the cap before the end of its file: {', '.join(unwarmed)}"]
    bound = [f"{s}/{w}" for s, fig in systems.items() for w, f in fig.get("workloads", {}).items()
             if f["max"]["qps"] >= GENERATOR_BOUND_QPS]
    if bound:
        lines += ["", (f"note: {', '.join(bound)} reached {GENERATOR_BOUND_QPS}+ qps, where dnsperf on one core is "
                       "the limit: compare CPU µs/q there.")]
    for name, figures in systems.items():
        if "error" in figures:
            lines += ["", f"{name} FAILED: {figures['error']}"]
    lines += [f"note: {note}" for note in meta.get("notes", [])]
    return "\n".join(lines)


def _workload_rows(systems: dict) -> list[list[str]]:
    rows = []
    for name, figures in systems.items():
        for workload, f in figures.get("workloads", {}).items():
            rows.append([name, workload, _fmt(f["max"]["qps"], 0), _fmt(f["max"]["loss_pct"], 2),
                         _fmt(_share(f["max"]["rcodes"], "NXDOMAIN"), 1),
                         _fmt(f["max"]["cpu_us_per_query"], 1), _latency(f["latency"], "p50_ms"),
                         _latency(f["latency"], "p99_ms"), _fmt(f["latency"]["loss_pct"], 2),
                         _fmt(figures["memory"]["rss_after_load_mb"], 1),
                         _fmt(figures["load"]["start_to_answer_s"], 2)])
    return rows


def _latency(figures: dict, key: str) -> str:
    """A latency, starred when the server could not keep up with the fixed rate."""
    return _fmt(figures[key], 3) + ("" if figures["sustained"] else "*")


def _share(rcodes: dict[str, int], code: str) -> float | None:
    """Percentage of answers with ``code``: blocked answers, to check systems block alike."""
    total = sum(rcodes.values())
    return 100.0 * rcodes.get(code, 0) / total if total else None


def _memory_rows(systems: dict) -> list[list[str]]:
    rows = []
    for name, figures in systems.items():
        if "memory" not in figures:
            continue
        m, load = figures["memory"], figures["load"]
        rows.append([name, _fmt(m["rss_empty_list_mb"], 1), _fmt(m["rss_idle_mb"], 1), _fmt(m["list_mb"], 1),
                     _fmt(m["rss_after_load_mb"], 1), _fmt(m["pss_after_load_mb"], 1), str(m["processes"]),
                     _fmt(load["start_to_answer_s"], 2), _fmt(load["empty_list_start_to_answer_s"], 2),
                     _fmt(load["list_load_s"], 2), _fmt(load.get("lists_loaded_s"), 2)])
    return rows


def _ratio_rows(ratio_table: dict, workloads: list[str]) -> list[list[str]]:
    rows = []
    for reference, table in ratio_table.items():
        for key, label in (("qps", "qps"), ("cpu_per_query", "CPU µs/q"), ("p99", "p99")):
            rows.append([reference, label, *(_fmt(table["workloads"].get(w, {}).get(key), 2) for w in workloads)])
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) or digits == 0:
        return f"{value:,.{digits}f}" if digits == 0 else f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: the first two columns left-aligned (names), the rest right-aligned
    (figures). Also used by the soak test's report."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    fmt = lambda row: "  ".join(
        str(cell).ljust(width) if i < 2 else str(cell).rjust(width) for i, (cell, width) in enumerate(zip(row, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(row) for row in rows)])
