"""The servers: the authoritative "internet" and the three resolvers under test.

Each resolver is described by how to write its config (from ``bench/configs``) with or
without the block list, the command that runs it, where its port comes from, and what its log
tells about list loading. Starting, probing and stopping is shared (:func:`launch`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import yaml
from dnsbench.dataset import Dataset
from dnsbench.procs import Managed, free_port, wait_until_answers
from dnsbench.tools import UNBOUND_PYTHON_GLUE

BENCH_DIR = Path(__file__).resolve().parents[1]
CONFIGS = BENCH_DIR / "configs"
ZONES = BENCH_DIR / "zones"
START_TIMEOUT_S = 120.0  # unbound needs several seconds per million local-zones

_FILTERDNS_PORT = re.compile(r"listening for DNS on 127\.0\.0\.1:(\d+)")
_FILTERDNS_LISTS = re.compile(r"lists loaded: \d+ distinct domains .*\(([\d.]+) s\)")
_FILTERDNS_POLICY = re.compile(r"policy ready: .* (\d+) listed domains")


class Unsupported(RuntimeError):
    """The requested setup cannot run with this filterdns (e.g. no ``store:`` support yet)."""


def render(template: str, **values: object) -> str:
    return Template((CONFIGS / template).read_text()).substitute({k: str(v) for k, v in values.items()})


@dataclass
class Prepared:
    """A server ready to start: its command, and how to learn its port and load facts."""

    argv: list[str]
    port_of: Callable[[str], int | None]  # from the log text
    facts_of: Callable[[str], dict] = field(default=lambda log: {})


@dataclass
class Running:
    name: str
    proc: Managed
    port: int
    start_to_answer_s: float
    facts: dict


@contextmanager
def launch(name: str, prepared: Prepared, workdir: Path, cpus: str | None) -> Iterator[Running]:
    """Start, wait for the first answer (the load time), and always stop."""
    proc = Managed(name, prepared.argv, workdir / f"{name}.log", workdir, cpus)
    with proc:
        def port_of() -> int | None:
            return prepared.port_of(proc.log_text())

        seconds = wait_until_answers(proc, "127.0.0.1", port_of, START_TIMEOUT_S)
        port = port_of()
        assert port is not None
        yield Running(name, proc, port, seconds, prepared.facts_of(proc.log_text()))


@contextmanager
def internet(workdir: Path, cpus: str | None) -> Iterator[Running]:
    """NSD serving the wildcard root zone on 127.0.0.1: every name resolves to loopback."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nsd.conf"
    conf.write_text(render("nsd.conf", port=port, workdir=workdir, zonefile=ZONES / "root.zone"))
    prepared = Prepared(["nsd", "-d", "-c", str(conf)], port_of=lambda log: port)
    with launch("nsd", prepared, workdir, cpus) as running:
        yield running


class Resolver:
    """A resolver under test: writes its config into ``workdir`` with or without the list."""

    name = ""

    def prepare(self, workdir: Path, with_list: bool) -> Prepared:
        raise NotImplementedError

    def setup(self) -> dict:
        """Choices made while preparing that the results should show."""
        return {}

    def cleanup(self, workdir: Path) -> None:
        """Remove what a run leaves behind that nobody reads."""

    def reloads(self, server: Running, workdir: Path) -> dict[str, Callable[[], None]]:
        """Ways to make the running server (its config in ``workdir``) reload, by name, for
        the reload-under-load measurement; each starts a reload and returns at once."""
        return {}

    def reload_count(self, server: Running) -> int:
        """How many reloads the server's log says it has finished."""
        return 0


class FilterDns(Resolver):
    """``record``: "store" (the store only), "jsonl" (the JSON-lines query log; a filterdns that
    always has a store records there too) or "auto" (the store when this filterdns has one).
    ``overrides``: sections merged into the school config (key by key, mappings recursively),
    for runs that need a setting changed, such as the soak test."""

    name = "filterdns"

    def __init__(self, upstream_port: int, dataset: Dataset, record: str, extra_args: str,
                 overrides: dict | None = None):
        self.upstream_port = upstream_port
        self.dataset = dataset
        self.record = record
        self.recording = ""
        self.extra_args = shlex.split(extra_args)
        self.overrides = overrides or {}

    def prepare(self, workdir: Path, with_list: bool) -> Prepared:
        lists_dir = _linked_into(self.dataset.list_dir if with_list else self.dataset.empty_list_dir, workdir / "lists")
        config = yaml.safe_load(render("filterdns-school.yaml", upstream_port=self.upstream_port, lists_dir=lists_dir))
        config = _merged(config, self.overrides)
        self.recording = self._write_config(workdir / "config.yaml", config)
        return Prepared(
            [sys.executable, "-m", "filterdns", "serve", "-c", str(workdir / "config.yaml"), *self.extra_args],
            port_of=_first_int(_FILTERDNS_PORT),
            facts_of=_filterdns_facts,
        )

    def setup(self) -> dict:
        return {"recording": self.recording, "extra_args": self.extra_args}

    def _write_config(self, path: Path, config: dict) -> str:
        """Write the config with the recording asked for, checked by filterdns's own loader so
        a bad setup fails before anything starts. Returns what is recorded to."""
        if self.record in ("auto", "store"):
            problem = _write_checked(path, {**config, "store": {"backend": "sqlite"}})
            if problem is None:
                return "store"
            if self.record == "store" or "store" not in problem:
                raise Unsupported(f"filterdns rejects the benchmark config with a store: section:\n{problem}")
        config["log"]["query_log"] = "query-log.jsonl"
        problem = _write_checked(path, config)
        if problem is not None:
            raise Unsupported(f"filterdns rejects the benchmark config:\n{problem}")
        return "jsonl"

    def reloads(self, server: Running, workdir: Path) -> dict[str, Callable[[], None]]:
        def lists() -> None:
            # Same content, new modification time: the whole index is built again.
            for path in self.dataset.list_dir.iterdir():
                os.utime(path)
            os.kill(server.proc.pid, signal.SIGHUP)

        def policy() -> None:
            # A policy change (a new revision) with the same lists: the engine is rebuilt.
            config_file = workdir / "config.yaml"
            config = yaml.safe_load(config_file.read_text())
            config["default_group"] = config.get("default_group", "default")
            group = config["groups"].setdefault(config["default_group"], {}) or {}
            group["description"] = f"reloaded {self.reload_count(server) + 1}"
            config["groups"][config["default_group"]] = group
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
            os.kill(server.proc.pid, signal.SIGHUP)

        return {"lists": lists, "policy": policy}

    def reload_count(self, server: Running) -> int:
        return server.proc.log_text().count("configuration reloaded")

    def cleanup(self, workdir: Path) -> None:
        # The query log and the store of a full run are hundreds of MB and never read.
        (workdir / "query-log.jsonl").unlink(missing_ok=True)
        shutil.rmtree(workdir / "data", ignore_errors=True)


def _merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _write_checked(path: Path, config: dict) -> str | None:
    """Write ``config`` to ``path``; filterdns's loader's complaint about it, or None."""
    try:
        from filterdns.config.loader import ConfigError, load_config
    except ImportError as error:
        raise Unsupported(f"filterdns is not importable ({error}): pip install -e .") from None
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        load_config(path)
    except ConfigError as error:
        return str(error)
    return None


class Unbound(Resolver):
    name = "unbound"

    def __init__(self, upstream_port: int, dataset: Dataset):
        self.upstream_port = upstream_port
        self.dataset = dataset

    def prepare(self, workdir: Path, with_list: bool) -> Prepared:
        port = free_port()
        conf = workdir / "unbound.conf"
        blocklist = self.dataset.unbound_include if with_list else self.dataset.empty_include
        conf.write_text(render("unbound.conf", port=port, workdir=workdir, blocklist=blocklist,
                               upstream_port=self.upstream_port))
        return Prepared(["unbound", "-d", "-c", str(conf)], port_of=lambda log: port)


class UnboundPython(Resolver):
    """Unbound with a pfBlockerNG "python mode"-style module: the list in a Python set checked
    on every new query, every resolved reply logged (configs/unbound_blocklist.py)."""

    name = "unbound-python"

    def __init__(self, upstream_port: int, dataset: Dataset):
        self.upstream_port = upstream_port
        self.dataset = dataset

    def prepare(self, workdir: Path, with_list: bool) -> Prepared:
        port = free_port()
        listed = workdir / "blocklist.txt"  # the module reads it from Unbound's working directory
        listed.unlink(missing_ok=True)
        if with_list:
            listed.symlink_to(self.dataset.plain_list.resolve())
        else:
            listed.write_text("")
        conf = workdir / "unbound-python.conf"
        conf.write_text(render("unbound-python.conf", port=port, workdir=workdir, upstream_port=self.upstream_port,
                               script=CONFIGS / "unbound_blocklist.py"))
        # Unbound's embedded Python does not look in Debian's dist-packages by itself, where
        # python3-unbound puts the glue module (unboundmodule.py) it imports first.
        glue = f"PYTHONPATH={Path(UNBOUND_PYTHON_GLUE).parent}"
        return Prepared(["env", glue, "unbound", "-d", "-c", str(conf)], port_of=lambda log: port)


class Dnsmasq(Resolver):
    name = "dnsmasq"
    cache_size = 300_000

    def __init__(self, upstream_port: int, dataset: Dataset):
        self.upstream_port = upstream_port
        self.dataset = dataset

    def prepare(self, workdir: Path, with_list: bool) -> Prepared:
        port = free_port()
        conf = workdir / "dnsmasq.conf"
        blocklist = self.dataset.dnsmasq_include if with_list else self.dataset.empty_include
        conf.write_text(render("dnsmasq.conf", port=port, upstream_port=self.upstream_port, blocklist=blocklist,
                               cache_size=self.cache_size))
        return Prepared(["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"], port_of=lambda log: port)


def _linked_into(source: Path, folder: Path) -> Path:
    """Hard links of the list files in ``source`` inside ``folder``: filterdns reads local
    lists only from its config's folder (or data_dir), and a hard link, unlike a symbolic one,
    is a file there. Same inode: touching the dataset's files (the reload runs) touches these."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in source.iterdir():
        os.link(path, folder / path.name)
    return folder


def _first_int(pattern: re.Pattern) -> Callable[[str], int | None]:
    def find(log: str) -> int | None:
        match = pattern.search(log)
        return int(match.group(1)) if match else None

    return find


def _filterdns_facts(log: str) -> dict:
    """How many names the service indexed, and its own timing of list loading (reading,
    parsing, indexing) when its log carries it."""
    facts: dict = {}
    policy = _FILTERDNS_POLICY.findall(log)
    if policy:
        facts["listed_domains_loaded"] = int(policy[-1])
    timing = _FILTERDNS_LISTS.findall(log)
    if timing:
        facts["lists_loaded_s"] = float(timing[-1])
    return facts
