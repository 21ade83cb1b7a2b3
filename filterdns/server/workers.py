"""``filterdns serve --workers N``: N processes answering on the same ports.

One Python process uses one core. On a host with more cores, N worker processes each bind
the listening addresses with SO_REUSEPORT and the kernel spreads queries across them. This
module is only the supervisor: it starts the workers (each a normal ``filterdns serve`` with
a worker index), passes SIGHUP and SIGTERM on, and restarts a worker that dies. Worker 0 also
runs what must exist once (console, block page, metrics, list downloads, retention); every
worker follows the shared store for policy and records its own events to it.

Each worker keeps its own cache and its own copy of the lists, and /metrics (on worker 0)
counts worker 0's queries only.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time

from filterdns.config.model import Config, Endpoint
from filterdns.server.listeners import ListenError, check_free

log = logging.getLogger("filterdns.workers")

# A worker that dies this many times within RESTART_WINDOW seconds is not restarted again.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


def resolve_ports(listen: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """Workers must agree on ports: an ephemeral port 0 is chosen once, here, as one free
    for both UDP and TCP. A fixed port must be free (``ListenError`` otherwise): workers bind
    with SO_REUSEPORT, which would let them join another filterdns's workers on it."""
    resolved = []
    for endpoint in listen:
        if endpoint.port != 0:
            check_free(endpoint)
            resolved.append(endpoint)
            continue
        family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        while True:
            with socket.socket(family, socket.SOCK_DGRAM) as udp, socket.socket(family, socket.SOCK_STREAM) as tcp:
                udp.bind((endpoint.host, 0))
                port = udp.getsockname()[1]
                try:
                    tcp.bind((endpoint.host, port))
                except OSError:
                    continue
            resolved.append(Endpoint(endpoint.host, port))
            break
    return tuple(resolved)


def worker_command(argv: list[str], index: int, listen: tuple[Endpoint, ...]) -> list[str]:
    """The command line of worker ``index``: the supervisor's own, with resolved ports."""
    command = [sys.executable, "-m", "filterdns", *argv, "--worker-index", str(index)]
    for endpoint in listen:
        command += ["--listen", str(endpoint)]
    return command


async def supervise(config: Config, argv: list[str]) -> int:
    """Run ``config.node.server.workers`` workers until SIGTERM/SIGINT; returns the exit code."""
    count = config.node.server.workers
    try:
        listen = resolve_ports(config.node.server.listen)
    except ListenError as error:
        log.error("cannot start: %s", error)
        return 1
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    workers: dict[int, asyncio.subprocess.Process] = {}

    def forward(signum: int) -> None:
        for process in workers.values():
            if process.returncode is None:
                process.send_signal(signum)

    loop.add_signal_handler(signal.SIGHUP, forward, signal.SIGHUP)
    log.info("starting %d workers on %s", count, ", ".join(map(str, listen)))
    failed = await asyncio.gather(*(_keep_running(i, argv, listen, workers, stopping) for i in range(count)))
    forward(signal.SIGTERM)
    results = await asyncio.gather(*(p.wait() for p in workers.values()))
    return 1 if any(failed) or any(code not in (0, -signal.SIGTERM) for code in results) else 0


async def _keep_running(
    index: int,
    argv: list[str],
    listen: tuple[Endpoint, ...],
    workers: dict[int, asyncio.subprocess.Process],
    stopping: asyncio.Event,
) -> bool:
    """Run worker ``index``, restarting it when it dies; True if it had to be given up."""
    deaths: list[float] = []
    while not stopping.is_set():
        process = await asyncio.create_subprocess_exec(*worker_command(argv, index, listen))
        workers[index] = process
        done, _ = await asyncio.wait(
            {asyncio.ensure_future(process.wait()), asyncio.ensure_future(stopping.wait())},
            return_when=asyncio.FIRST_COMPLETED,
        )
        if stopping.is_set():
            return False
        now = time.monotonic()
        deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
        log.error("worker %d exited with code %s", index, process.returncode)
        if len(deaths) >= MAX_RESTARTS:
            log.error("worker %d keeps failing; stopping filterdns", index)
            stopping.set()
            return True
        await asyncio.sleep(1.0)
    return False
