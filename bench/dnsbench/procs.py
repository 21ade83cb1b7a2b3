"""Starting, watching and always stopping the servers under test.

Each server runs in its own session (process group), pinned to the server CPUs with
``taskset``, with its output in a log file (a pipe nobody reads would stall it). Stopping
signals that process group only, so forked children (NSD's server processes, future filterdns
workers) go too and nothing else is touched. Memory and CPU are read from /proc, summed over
the process and its descendants.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerDied(RuntimeError):
    pass


class Managed:
    """One server process: ``with Managed(...) as proc:`` guarantees it is stopped."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path, cpus: str | None):
        self.name = name
        self.argv = (["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []) + argv
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_alive(self) -> None:
        if not self.alive():
            tail = "\n".join(self.log_text().splitlines()[-25:])
            raise ServerDied(f"{self.name} exited (code {self.process.returncode if self.process else '?'}):\n{tail}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout``."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                # The leader is gone; children of the group that outlived it get the same signal.
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            except subprocess.TimeoutExpired:
                continue


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS summed over the process tree (PSS counts pages shared between forked
    workers once; RSS counts them in every process)."""
    rss = pss = 0
    tree = descendants(pid)
    for proc in tree:
        try:
            for line in Path(f"/proc/{proc}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1), "processes": len(tree)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree so far (all threads)."""
    ticks = 0
    for proc in descendants(pid):
        try:
            stat = Path(f"/proc/{proc}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP right now (for servers that cannot bind port 0)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port found")


def probe_query(name: str, qid: int) -> bytes:
    """A minimal A query (RD set) for ``name``, built by hand."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)


def wait_until_answers(proc: Managed, host: str, port_of, deadline_s: float, name: str = "probe.example.net") -> float:
    """Seconds from the process start until it answers a query (any rcode). ``port_of`` is
    called until it returns a port: servers that bind port 0 tell theirs in the log."""
    deadline = proc.started_at + deadline_s
    rng = random.Random()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.02)
        while time.monotonic() < deadline:
            proc.check_alive()
            port = port_of()
            if port is None:
                time.sleep(0.02)
                continue
            qid = rng.randrange(65536)
            sock.sendto(probe_query(name, qid), (host, port))
            try:
                while True:
                    reply = sock.recv(4096)
                    if len(reply) >= 2 and struct.unpack("!H", reply[:2])[0] == qid:
                        return time.monotonic() - proc.started_at
            except TimeoutError:
                continue
            except ConnectionRefusedError:  # not bound yet
                time.sleep(0.02)
    raise TimeoutError(f"{proc.name} did not answer within {deadline_s:.0f} s")


def split_cpus(count: int | None = None) -> tuple[str | None, str | None]:
    """Default pinning in taskset's syntax: (server under test, everything else). The server
    gets CPU 0 to itself and dnsperf, NSD and the harness share the others; on one CPU
    nothing is pinned."""
    count = count or os.cpu_count() or 1
    if count < 2:
        return None, None
    return "0", "1" if count == 2 else f"1-{count - 1}"
