"""Optional sampling profile of filterdns during each max-rate run (``--profile``).

py-spy samples the server from outside (``--nonblocking``: it does not pause the process, so
the figures of the profiled run stay close to an unprofiled one; it runs on the load CPUs).
The raw collapsed stacks are kept in ``<out>/profile/<workload>.txt`` (flame-graph tools read
them) and summarised as the functions with the most samples on top of the stack (self) and
anywhere in it (total).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from dnsbench.measure import MaxRunHook

SAMPLE_RATE = 250
_FRAME_FILE = re.compile(r" \((.*?):\d+\)$")


def py_spy_hook(out_dir: Path, cpus: str | None, profiles: dict[str, Path]) -> MaxRunHook | None:
    """A hook recording filterdns's max-rate runs, or None when py-spy is not installed."""
    if shutil.which("py-spy") is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)

    def hook(system: str, workload: str, pid: int, seconds: float) -> Callable[[], None]:
        if system != "filterdns":
            return lambda: None
        path = out_dir / f"{workload}.txt"
        argv = ["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                "--rate", str(SAMPLE_RATE), "--nonblocking", "--format", "raw", "--output", str(path)]
        if cpus and shutil.which("taskset"):
            argv = ["taskset", "-c", cpus, *argv]
        recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def finish() -> None:
            try:
                recorder.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
            if path.exists():
                profiles[workload] = path

        return finish

    return hook


def top_functions(path: Path, count: int = 12) -> list[dict]:
    """The ``count`` functions with most self samples, with their self and total shares."""
    self_samples: Counter[str] = Counter()
    total_samples: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = [_short(frame) for frame in stack.split(";")]
        weight = int(number)
        samples += weight
        self_samples[frames[-1]] += weight
        for frame in set(frames):
            total_samples[frame] += weight
    if not samples:
        return []
    return [
        {"function": name, "self_pct": round(100 * n / samples, 1), "total_pct": round(100 * total_samples[name] / samples, 1)}
        for name, n in self_samples.most_common(count)
    ]


def _short(frame: str) -> str:
    """``handle (/…/site-packages/filterdns/resolver/pipeline.py:40)`` -> ``handle (filterdns/resolver/pipeline.py)``."""
    match = _FRAME_FILE.search(frame)
    if not match:
        return frame
    file = match.group(1)
    for marker in ("/filterdns/", "/site-packages/", "/lib/python3"):
        if marker in file:
            file = file[file.index(marker) + 1:]
            break
    return f"{frame[:match.start()]} ({file})"
