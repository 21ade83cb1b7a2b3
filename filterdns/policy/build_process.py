"""Build a category index in a child process and hand it back as a pickle.

Parsing and indexing a million domains holds the interpreter lock for long stretches; done in
the resolver's own process it would stall DNS answers. A short-lived child does the work and
exits, so no builder stays resident between reloads (a process pool would keep its worker and
multiprocessing's resource tracker alive: about 60 MB for nothing). The index is a few large
byte strings, so the hand-over is a fast copy.

Run as ``python -m filterdns.policy.build_process INPUT OUTPUT LOG_LEVEL LOG_FORMAT``.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from filterdns.config.model import CategoryConfig
from filterdns.policy.categories import CategorySet, build_category_set


class BuildFailed(Exception):
    pass


async def build_in_child(
    categories: Sequence[CategoryConfig],
    cache_dir: Path,
    base_dir: Path,
    roots: tuple[Path, ...],
    essential: Sequence[str] = (),
    *,
    log_level: str,
    log_format: str,
) -> CategorySet:
    """``build_category_set`` in a child process; its log lines go to our stderr."""
    with tempfile.TemporaryDirectory(prefix="filterdns-build-") as folder:
        request, result = Path(folder) / "request.pickle", Path(folder) / "result.pickle"
        request.write_bytes(pickle.dumps((tuple(categories), cache_dir, base_dir, roots, tuple(essential))))
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, str(request), str(result), log_level, log_format
        )
        if await child.wait() != 0 or not result.exists():
            raise BuildFailed(f"the list builder exited with code {child.returncode}")
        return await asyncio.to_thread(lambda: pickle.loads(result.read_bytes()))


def main(argv: list[str]) -> int:
    from filterdns.logsetup import configure_logging

    request, result, log_level, log_format = argv
    configure_logging(log_level, log_format)
    categories, cache_dir, base_dir, roots, essential = pickle.loads(Path(request).read_bytes())
    built = build_category_set(categories, cache_dir, base_dir, roots, essential)
    Path(result).write_bytes(pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
