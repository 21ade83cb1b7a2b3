"""Run a real ``filterdns serve`` process for end-to-end tests.

The server binds port 0 and the test reads the port from its log, so tests running side by
side never fight over ports. Stopping sends SIGTERM and checks the exit code, so every
end-to-end test also checks the graceful shutdown.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from tests.support import LOOPBACK

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening for DNS on \[?([0-9a-f.:]+)\]?:(\d+)")
_CONSOLE = re.compile(r"staff console on (https?://[^\s/]+)")
_ENCRYPTED = re.compile(r"listening for DNS over (HTTPS|TLS) on \[?[0-9a-f.:]+\]?:(\d+)")


class FilterDnsProcess:
    """``with FilterDnsProcess(config_dict, tmp_path) as server: server.port``

    ``command`` runs another install's ``filterdns`` script instead of this repository's code.
    """

    def __init__(
        self,
        config: dict,
        workdir: Path,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 20.0,
        command: tuple[str, ...] | None = None,
    ):
        self.config = config
        self.workdir = workdir
        self.extra_args = extra_args
        self.command = command
        self.start_timeout = start_timeout
        self.config_path = workdir / "config.yaml"
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.log_lines: list[str] = []
        self._listening = threading.Event()
        self._expected = 0

    @property
    def port(self) -> int:
        return self.ports.get("127.0.0.1") or next(iter(self.ports.values()))

    @property
    def console_url(self) -> str:
        """The staff console's base URL, e.g. ``http://127.0.0.1:41234`` (config ``web.listen``
        with port 0). The service logs it before the DNS lines ``__enter__`` waits for."""
        for line in self.log_lines:
            match = _CONSOLE.search(line)
            if match:
                return match.group(1)
        raise RuntimeError("no staff console in the log:\n" + "\n".join(self.log_lines[-20:]))

    def encrypted_port(self, protocol: str) -> int:
        """The port of the first DoH (``"HTTPS"``) or DoT (``"TLS"``) listener, from the log
        lines the service writes before the DNS ones ``__enter__`` waits for."""
        for line in self.log_lines:
            match = _ENCRYPTED.search(line)
            if match and match.group(1) == protocol:
                return int(match.group(2))
        raise RuntimeError(f"no DNS over {protocol} listener in the log:\n" + "\n".join(self.log_lines[-20:]))

    def write_config(self, config: dict | None = None) -> None:
        if config is not None:
            self.config = config
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def __enter__(self) -> "FilterDnsProcess":
        self.write_config()
        self._expected = len(self.config.get("server", {}).get("listen", [])) or 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.command is None:
            # The repository's own code, whatever copy an editable install points at.
            env["PYTHONPATH"] = str(REPO)
        else:
            env.pop("PYTHONPATH", None)
        command = self.command or (sys.executable, "-m", "filterdns")
        self.process = subprocess.Popen(
            [*command, "serve", "-c", str(self.config_path), *self.extra_args],
            cwd=self.workdir,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._listening.wait(self.start_timeout):
            self.process.kill()
            raise RuntimeError("filterdns did not start:\n" + "\n".join(self.log_lines))
        return self

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.log_lines.append(line.rstrip())
            match = _LISTENING.search(line)
            if match:
                self.ports[match.group(1)] = int(match.group(2))
                if len(self.ports) >= self._expected:
                    self._listening.set()

    def reload(self) -> None:
        assert self.process is not None
        before = sum("configuration reloaded" in line for line in self.log_lines)
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if sum("configuration reloaded" in line for line in self.log_lines) > before:
                return
            if any("reload failed" in line for line in self.log_lines[-20:]):
                raise RuntimeError("reload failed:\n" + "\n".join(self.log_lines[-20:]))
            time.sleep(0.05)
        raise RuntimeError("no reload seen in the log")

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __exit__(self, *exc) -> None:
        code = self.stop()
        if exc[0] is None:
            assert code == 0, f"filterdns exited with {code}:\n" + "\n".join(self.log_lines[-30:])


def base_config(upstream_port: int, **overrides) -> dict:
    """A minimal config: one loopback listener on an ephemeral port, one fake upstream."""
    config = {
        "server": {"listen": ["127.0.0.1:0"], "uvloop": True},
        "upstream": {"servers": [f"127.0.0.1:{upstream_port}"], "timeout": "1s"},
        "data_dir": "data",
        "log": {"level": "info"},
        "web": {"listen": None},  # tests that use the console turn it on with port 0
        "fetch_allow": [str(network) for network in LOOPBACK],  # list servers and webhooks of tests
    }
    config.update(overrides)
    return config
