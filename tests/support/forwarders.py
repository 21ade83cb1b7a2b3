"""Real forwarders (dnsmasq, Unbound) started in front of filterdns, as a school router runs them.

Both listen on 127.0.0.1 with a free port and forward everything to filterdns. Tests skip when
the binaries are missing (scripts/test installs them).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (checked, then released)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def wait_until_answering(port: int, process: subprocess.Popen, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            dns.query.udp(dns.message.make_query("startup.example", "A"), "127.0.0.1", port=port, timeout=0.5)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer on port {port}")


class Forwarder:
    def __init__(self, command: list[str], port: int, name: str):
        self.command, self.port, self.name = command, port, name
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Forwarder":
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until_answering(self.port, self.process, self.name)
        except RuntimeError:
            self.process.kill()
            raise RuntimeError(f"{self.name} failed: {self.process.stderr.read().decode(errors='replace')}")
        return self

    def __exit__(self, *exc) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def dnsmasq(filterdns_port: int) -> Forwarder:
    """dnsmasq as on pfSense/OpenWrt: no cache, adds the client's MAC and /32 or /128 subnet."""
    if not Path(DNSMASQ).exists():
        pytest.skip("dnsmasq is not installed")
    port = free_port()
    command = [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        f"--server=127.0.0.1#{filterdns_port}",
        "--add-mac",
        "--add-subnet=32,128",
        "--cache-size=0",
        "--pid-file=",
        "--log-facility=-",
    ]
    return Forwarder(command, port, "dnsmasq")


def unbound(filterdns_port: int, workdir: Path) -> Forwarder:
    """Unbound as on OPNsense: forwarding with the client-subnet cache, sending /32 and /128."""
    if not Path(UNBOUND).exists():
        pytest.skip("unbound is not installed")
    port = free_port()
    conf = workdir / "unbound.conf"
    conf.write_text(
        f"""server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{workdir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    module-config: "subnetcache iterator"
    send-client-subnet: 127.0.0.1
    client-subnet-always-forward: yes
    max-client-subnet-ipv4: 32
    max-client-subnet-ipv6: 128
    num-threads: 1
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{filterdns_port}
"""
    )
    return Forwarder([UNBOUND, "-d", "-c", str(conf)], port, "unbound")


def ask_from(source: str, port: int, name: str, rdtype: str = "A", **kwargs) -> dns.message.Message:
    """Query 127.0.0.1:port from a chosen loopback source address (127.0.0.0/8 is all local)."""
    query = dns.message.make_query(name, rdtype, **kwargs)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=3, source=source)
