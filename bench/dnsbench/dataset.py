"""The benchmark's inputs: a category block list and the dnsperf query files.

Everything is derived from a seed and the sizes, written under ``<out>/data/<hash>/`` and
reused while a manifest with the same parameters is there (the 1M-name list takes a few
seconds to make). Guarantees the measurements rely on:

* allowed names are never covered by a listed name (no parent of theirs is listed), so every
  system gives the same answer class for every query and the rcode split can be compared;
* cold names are distinct from each other and from every other file, and each of the cold
  files (warm-up, max-rate, latency) is run through at most once, so no cold query is ever a
  cache hit;
* the warm-up file of every other workload holds each distinct question of that workload once,
  so after its warm-up every allowed answer is cached in every system, however fast it is:
  those workloads measure hits and blocks, and misses are measured by ``cold`` alone;
* the same files feed every system.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from dnsbench.names import NameGenerator, is_covered

FORMAT_VERSION = 2

# Categories of the generated list, their share of it, and the file format they ship in.
CATEGORIES: tuple[tuple[str, float, str], ...] = (
    ("adult", 0.30, "domains"),
    ("malware", 0.15, "hosts"),
    ("phishing", 0.10, "domains"),
    ("gambling", 0.10, "domains"),
    ("social", 0.10, "domains"),
    ("games", 0.10, "domains"),
    ("piracy", 0.15, "domains"),
)
# Popular sites a school lists under these categories (drawn from the traffic file).
TOP_DOMAIN_CATEGORIES = ("social", "games")
TOP_DOMAIN_BLOCKED_SHARE = 0.03
MIXED_BLOCKED_SHARE = 0.20
REALISTIC_TYPES = (("A", 55), ("AAAA", 35), ("HTTPS", 10))
REALISTIC_PREFIXES = (("", 40), ("www.", 45), ("api.", 3), ("cdn.", 3), ("static.", 3), ("m.", 2),
                      ("login.", 2), ("img.", 2))
ZIPF_EXPONENT = 1.0

DEFAULT_TRAFFIC = Path(__file__).resolve().parents[3] / "shared" / "data" / "traffic" / "top-domains.txt"


@dataclass(frozen=True)
class Sizes:
    list_size: int
    hot_names: int
    cold_max: int
    cold_latency: int
    cold_warmup: int
    mixed_queries: int
    mixed_allowed_pool: int
    realistic_queries: int


@dataclass(frozen=True)
class Workload:
    """Which query file each phase of a workload reads. Warm-ups always read their file once;
    ``once``: the measured runs never loop over their file either."""

    name: str
    warmup: Path
    measure: Path
    latency: Path
    once: bool
    description: str


@dataclass(frozen=True)
class Dataset:
    root: Path
    list_dir: Path  # one file per category, for filterdns
    empty_list_dir: Path  # same files, empty: the baseline for "memory for the list"
    unbound_include: Path
    dnsmasq_include: Path
    plain_list: Path  # one name per line: the pfBlockerNG-style peer's list
    empty_include: Path
    listed_domains: int
    workloads: tuple[Workload, ...]
    notes: tuple[str, ...]


def prepare(out_dir: Path, sizes: Sizes, seed: int, traffic: Path | None) -> Dataset:
    """Generate (or reuse) the lists and query files for these parameters."""
    traffic_names = _read_traffic(traffic) if traffic is not None and traffic.is_file() else None
    params = {"version": FORMAT_VERSION, "seed": seed, "sizes": asdict(sizes),
              "traffic": str(traffic) if traffic_names else None}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    root = out_dir / "data" / digest
    manifest = root / "manifest.json"
    if not (manifest.is_file() and json.loads(manifest.read_text()).get("params") == params):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        counts = _generate(root, sizes, seed, traffic_names)
        manifest.write_text(json.dumps({"params": params, "counts": counts}, indent=2))
    counts = json.loads(manifest.read_text())["counts"]
    notes = () if traffic_names else (f"realistic workload skipped: no traffic file at {traffic}",)
    return _describe(root, counts, has_realistic=traffic_names is not None, notes=notes)


def _describe(root: Path, counts: dict, has_realistic: bool, notes: tuple[str, ...]) -> Dataset:
    q = root / "queries"
    workloads = [
        Workload("hot", q / "hot.txt", q / "hot.txt", q / "hot.txt", False,
                 f"{counts['hot']} allowed names, repeated (cache hits)"),
        Workload("cold", q / "cold-warmup.txt", q / "cold-max.txt", q / "cold-latency.txt", True,
                 f"{counts['cold_max']} distinct allowed names, none repeated (cache misses)"),
        Workload("mixed", q / "mixed-warmup.txt", q / "mixed.txt", q / "mixed.txt", False,
                 f"{counts['mixed']} queries, {MIXED_BLOCKED_SHARE:.0%} blocked, the rest from "
                 f"{counts['mixed_pool']} allowed names"),
    ]
    if has_realistic:
        workloads.append(Workload("realistic", q / "realistic-warmup.txt", q / "realistic.txt", q / "realistic.txt", False,
                                  f"{counts['realistic']} queries, Zipf over the top-domains file, A/AAAA/HTTPS"))
    return Dataset(
        root=root,
        list_dir=root / "lists",
        empty_list_dir=root / "lists-empty",
        unbound_include=root / "unbound-blocklist.conf",
        dnsmasq_include=root / "dnsmasq-blocklist.conf",
        plain_list=root / "plain-blocklist.txt",
        empty_include=root / "empty.conf",
        listed_domains=counts["listed"],
        workloads=tuple(workloads),
        notes=notes,
    )


def _generate(root: Path, sizes: Sizes, seed: int, traffic: list[str] | None) -> dict[str, int]:
    rng = random.Random(f"{seed}:choices")
    names = NameGenerator(f"{seed}:names")
    top_blocked = _sample_top_domains(traffic, sizes.list_size, rng) if traffic else []
    listed = _unique(names.host, sizes.list_size - len(top_blocked), exclude=set(top_blocked))
    listed_set = set(listed) | set(top_blocked)
    _write_lists(root, listed, top_blocked)

    taken: set[str] = set()

    def allowed(count: int) -> list[str]:
        batch = _unique(names.host, count, exclude=taken, reject=lambda n: is_covered(n, listed_set))
        taken.update(batch)
        return batch

    q = root / "queries"
    q.mkdir()
    hot = allowed(sizes.hot_names)
    _write_queries(q / "hot.txt", ((name, "A") for name in hot))
    for file, count in (("cold-warmup", sizes.cold_warmup), ("cold-max", sizes.cold_max),
                        ("cold-latency", sizes.cold_latency)):
        _write_queries(q / f"{file}.txt", ((name, "A") for name in allowed(count)))
    pool = allowed(sizes.mixed_allowed_pool)
    _write_queries(q / "mixed-warmup.txt", ((name, "A") for name in pool))
    _write_queries(q / "mixed.txt", _mixed_queries(rng, pool, listed, sizes.mixed_queries))
    counts = {"listed": len(listed_set), "hot": len(hot), "cold_max": sizes.cold_max,
              "mixed": sizes.mixed_queries, "mixed_pool": len(pool)}
    if traffic:
        realistic = list(_realistic_queries(rng, traffic, sizes.realistic_queries))
        _write_queries(q / "realistic.txt", realistic)
        _write_queries(q / "realistic-warmup.txt", dict.fromkeys(realistic))
        counts["realistic"] = sizes.realistic_queries
    return counts


def _unique(draw, count: int, exclude: set[str], reject=None) -> list[str]:
    """``count`` distinct names from ``draw`` that are not in ``exclude`` nor rejected."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        name = draw()
        if name in seen or name in exclude or (reject is not None and reject(name)):
            continue
        seen.add(name)
        out.append(name)
    return out


def _read_traffic(path: Path) -> list[str]:
    """Names in rank order; lines that are not plain host names are skipped."""
    names: list[str] = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        name = line.strip().lower().rstrip(".")
        if name and "." in name and name not in seen and all(c.isalnum() or c in ".-" for c in name) and name.isascii():
            seen.add(name)
            names.append(name)
    return names


def _sample_top_domains(traffic: list[str], list_size: int, rng: random.Random) -> list[str]:
    count = min(int(len(traffic) * TOP_DOMAIN_BLOCKED_SHARE), list_size // 10)
    return rng.sample(traffic, count)


def _write_lists(root: Path, listed: list[str], top_blocked: list[str]) -> None:
    """One file per category for filterdns; the union as unbound and dnsmasq includes, and as
    a plain list for the pfBlockerNG-style peer."""
    lists, empty = root / "lists", root / "lists-empty"
    lists.mkdir()
    empty.mkdir()
    start = 0
    for i, (category, share, fmt) in enumerate(CATEGORIES):
        end = len(listed) if i == len(CATEGORIES) - 1 else start + round(share * len(listed))
        names = listed[start:end]
        start = end
        if category in TOP_DOMAIN_CATEGORIES:
            names = names + top_blocked[TOP_DOMAIN_CATEGORIES.index(category)::len(TOP_DOMAIN_CATEGORIES)]
        _write_category(lists / f"{category}.txt", category, names, fmt)
        (empty / f"{category}.txt").write_text("")
    union = listed + top_blocked
    _write_lines(root / "unbound-blocklist.conf", (f'local-zone: "{name}." always_nxdomain' for name in union))
    _write_lines(root / "dnsmasq-blocklist.conf", (f"address=/{name}/" for name in union))
    _write_lines(root / "plain-blocklist.txt", union)
    (root / "empty.conf").write_text("")


def _write_category(path: Path, category: str, names: list[str], fmt: str) -> None:
    header = [f"# benchmark list: {category} ({len(names)} entries, generated)"]
    body = (f"0.0.0.0 {name}" for name in names) if fmt == "hosts" else iter(names)
    _write_lines(path, (*header, *body))


def _mixed_queries(rng: random.Random, pool: list[str], listed: list[str], count: int) -> Iterator[tuple[str, str]]:
    """Allowed names from ``pool`` with a fixed share of listed names, half of those asked as
    a subdomain so the suffix walk is exercised too."""
    blocked_sample = rng.sample(listed, min(len(listed), max(1, count // 5)))
    for _ in range(count):
        if rng.random() < MIXED_BLOCKED_SHARE:
            name = rng.choice(blocked_sample)
            yield (f"www.{name}" if rng.random() < 0.5 else name), "A"
        else:
            yield rng.choice(pool), "A"


def _realistic_queries(rng: random.Random, traffic: list[str], count: int) -> Iterator[tuple[str, str]]:
    """Zipf-distributed popularity over the ranked names, typical prefixes and query types."""
    weights = [1.0 / (rank ** ZIPF_EXPONENT) for rank in range(1, len(traffic) + 1)]
    domains = rng.choices(traffic, weights=weights, k=count)
    prefixes = rng.choices([p for p, _ in REALISTIC_PREFIXES], [w for _, w in REALISTIC_PREFIXES], k=count)
    types = rng.choices([t for t, _ in REALISTIC_TYPES], [w for _, w in REALISTIC_TYPES], k=count)
    for domain, prefix, qtype in zip(domains, prefixes, types):
        yield (domain if domain.startswith("www.") else prefix + domain), qtype


def _write_queries(path: Path, queries: Iterable[tuple[str, str]]) -> None:
    _write_lines(path, (f"{name} {qtype}" for name, qtype in queries))


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with open(path, "w", encoding="ascii") as out:
        for line in lines:
            out.write(line)
            out.write("\n")
