"""A throwaway PostgreSQL server for tests: its own cluster in a temporary folder,
listening on 127.0.0.1 at a free port, tuned for speed over durability.

It uses Debian's server binaries (package ``postgresql``, found under
``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root, so under root
the cluster belongs to, and the server runs as, the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Durability is pointless for a test cluster; these make initdb and commits much faster.
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One cluster. ``start()``/``stop()`` may be repeated (to test an outage); the port
    stays the same across restarts. ``destroy()`` stops it and removes its files."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="filterdns-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, check=False, cwd=self.root, capture_output=True, text=True, timeout=60)
        if result.returncode:
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}{self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.root} {_FAST}")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def _processes(self) -> list[int]:
        """The server's processes: the postmaster and its children (one per connection)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """The server stops answering (SIGSTOP to all its processes) but keeps its
        connections open, as a hung host or a stuck disk would; it carries on afterwards."""
        pids = self._processes()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def new_database(self) -> str:
        """The DSN of a new, empty database: one per test keeps tests apart without the
        cost of a cluster each. Needs asyncpg (imported here, so that this module does not)."""
        import asyncpg

        name = f"test_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return self.dsn(name)


def start_server() -> PostgresServer | None:
    """A running throwaway server, or None when PostgreSQL is not installed. A port taken
    between choosing and binding it is retried with another."""
    bindir = find_bindir()
    if bindir is None:
        return None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None
    server = PostgresServer(bindir)
    attempts_left = 3
    while True:
        try:
            server.start()
            return server
        except RuntimeError:
            attempts_left -= 1
            if not attempts_left:
                server.destroy()
                raise
            server.port = _free_port()
