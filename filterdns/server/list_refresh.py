"""Keeping the downloaded lists fresh.

Worker 0 downloads the URL lists every ``lists.refresh_interval`` and rebuilds the index when
one changed. The other workers do not download: they watch the folder of downloaded copies
and rebuild when worker 0 has stored a newer one. Either way a failure keeps the lists in use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from filterdns.config.model import Config
from filterdns.policy.sources import ListDownloader

log = logging.getLogger("filterdns.service")

FOLLOW_INTERVAL = 30.0


def has_url_lists(config: Config) -> bool:
    return any(source.is_url for category in config.policy.categories for source in category.sources)


async def download_lists_forever(
    downloader: ListDownloader, config: Callable[[], Config], rebuild: Callable[[], Awaitable[None]]
) -> None:
    """Worker 0: download the lists of the configuration in force, rebuild when one changed."""
    while True:
        try:
            if await downloader.refresh(config().policy.categories):
                await rebuild()
        except Exception:
            log.exception("list refresh failed; keeping the lists in use")
        await asyncio.sleep(config().node.lists.refresh_interval)


async def follow_downloads_forever(folder: Path, rebuild: Callable[[], Awaitable[None]]) -> None:
    """Other workers: rebuild when worker 0 has stored a newer copy in ``folder``."""
    seen = newest_copy(folder)
    while True:
        await asyncio.sleep(FOLLOW_INTERVAL)
        newest = newest_copy(folder)
        if newest > seen:
            seen = newest
            try:
                await rebuild()
            except Exception:
                log.exception("rebuilding the lists failed; keeping the lists in use")


def newest_copy(folder: Path) -> float:
    """Modification time of the newest file in ``folder`` (0 when there is none)."""
    try:
        return max((entry.stat().st_mtime for entry in folder.iterdir()), default=0.0)
    except OSError:
        return 0.0
