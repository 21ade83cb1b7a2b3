"""Downloading URL list sources into the cache folder.

The resolver never reads the network while building its index: :func:`build_category_set`
(categories.py) reads the last good copy that this module keeps in the cache folder. Rules:

* conditional GET (``If-None-Match`` / ``If-Modified-Since``) from the validators stored in a
  small JSON file next to each copy, so an unchanged list costs a 304 and no rebuild;
* the body is written to a temporary file and renamed over the copy only once it is complete
  and parses: a failed, truncated or nonsensical download leaves the last good copy in place;
* a response that parses to no entries at all is rejected when the previous copy had entries
  (or when it is not even an empty list): an error page or a broken upstream update must not
  silently unblock a category;
* a 200 with the same bytes as the copy (a server without validators) counts as unchanged;
* only public addresses, or networks the node's ``fetch_allow`` lists, are fetched from, and
  redirects only on the URL's own host (see :mod:`filterdns.fetching`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
import zlib
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import aiohttp

from filterdns import __version__
from filterdns.config.model import CategoryConfig, IPNetwork
from filterdns.fetching import failure_words, fetch_session, get_on_same_host, status_words
from filterdns.policy.listformats import read_list_file

log = logging.getLogger("filterdns.lists")

USER_AGENT = f"filterdns/{__version__} (block list refresh)"
PARALLEL_DOWNLOADS = 4
MAX_LIST_BYTES = 256 * 1024 * 1024
PROGRESS_EVERY_BYTES = 16 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


class DownloadRejected(Exception):
    """The server answered, but not with a usable list."""


# Network, HTTP and disk trouble, bad URLs, corrupt gzip bodies: all mean "keep the old copy".
_DOWNLOAD_ERRORS = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
    EOFError,
    zlib.error,
    ValueError,
    DownloadRejected,
)


def cached_copy_path(cache_dir: Path, url: str) -> Path:
    """Where the last good copy of ``url`` is kept: the URL's file name for people looking at
    the folder, plus a hash of the whole URL so that two lists called ``hosts`` do not collide."""
    tail = urlsplit(url).path.rstrip("/").rpartition("/")[2]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", tail)[:60].strip("._") or "list"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_dir / f"{readable}-{digest}"


def _meta_path(copy: Path) -> Path:
    return copy.with_name(copy.name + ".meta.json")


class ListDownloader:
    """Keeps the cached copies of every URL source fresh. One instance lives as long as the
    service; :meth:`last_errors` tells the console which URLs are failing."""

    def __init__(self, cache_dir: Path, timeout: float, fetch_allow: Sequence[IPNetwork] = ()) -> None:
        self._cache_dir = cache_dir
        self._timeout = timeout
        self._fetch_allow = tuple(fetch_allow)
        self._errors: dict[str, str] = {}
        self._running = asyncio.Lock()  # a refresh asked for while one runs waits for it

    def last_errors(self) -> dict[str, str]:
        """URL -> what went wrong on its latest attempt, for URLs whose latest attempt failed."""
        return dict(self._errors)

    async def refresh(self, categories: Sequence[CategoryConfig]) -> bool:
        """Refresh every URL source once. True when at least one cached copy changed (the
        caller then rebuilds the index). Network and server failures are logged and recorded,
        never raised."""
        async with self._running:
            return await self._refresh(categories)

    async def _refresh(self, categories: Sequence[CategoryConfig]) -> bool:
        sources: dict[str, str] = {}  # url -> format; a URL shared by categories is fetched once
        for category in categories:
            for source in category.sources:
                if source.is_url:
                    sources.setdefault(source.location, source.format)
        self._errors = {url: error for url, error in self._errors.items() if url in sources}
        if not sources:
            return False
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            log.error("cannot create the list cache folder %s: %s", self._cache_dir, error)
            self._errors.update(dict.fromkeys(sources, f"cache folder: {error}"))
            return False
        started = time.monotonic()
        limit = asyncio.Semaphore(PARALLEL_DOWNLOADS)
        async with fetch_session(self._fetch_allow, timeout=self._timeout, headers={"User-Agent": USER_AGENT}) as session:
            outcomes = await asyncio.gather(
                *(self._refresh_one(session, limit, url, fmt) for url, fmt in sources.items())
            )
        changed = outcomes.count("changed")
        failed = outcomes.count("failed")
        log.info(
            "list refresh: %d changed, %d unchanged, %d failed (%d URLs, %.1f s)",
            changed,
            len(outcomes) - changed - failed,
            failed,
            len(outcomes),
            time.monotonic() - started,
        )
        return changed > 0

    async def _refresh_one(self, session: aiohttp.ClientSession, limit: asyncio.Semaphore, url: str, fmt: str) -> str:
        """Returns "changed", "unchanged" or "failed"; failures are logged and recorded here."""
        copy = cached_copy_path(self._cache_dir, url)
        part = copy.with_name(copy.name + ".part")
        try:
            async with limit:
                changed = await self._download(session, url, fmt, copy, part)
        except _DOWNLOAD_ERRORS as error:
            message = failure_words(error)
            kept = "keeping the previous copy" if copy.exists() else "no copy yet"
            # One WARNING when a source starts failing; the refreshes after it, failing the
            # same way until it recovers, are only debug lines.
            level = logging.DEBUG if url in self._errors else logging.WARNING
            self._errors[url] = message
            log.log(level, "list %s: download failed (%s); %s", url, message, kept)
            return "failed"
        finally:
            part.unlink(missing_ok=True)
        if self._errors.pop(url, None) is not None:
            log.info("list %s: downloads work again", url)
        return "changed" if changed else "unchanged"

    async def _download(self, session: aiohttp.ClientSession, url: str, fmt: str, copy: Path, part: Path) -> bool:
        meta = _read_meta(copy) if copy.exists() else {}
        headers = {}
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        started = time.monotonic()
        log.info("list %s: checking for a new version", url)
        async with get_on_same_host(session, url, headers) as response:
            if response.status == 304 and copy.exists():
                os.utime(copy)  # its mtime records when it was last confirmed current
                log.info("list %s: not modified", url)
                return False
            if response.status != 200:
                raise DownloadRejected(status_words(response.status))
            size, sha256 = await _save_body(response, part, url)
            validators = {
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            }
        if sha256 == meta.get("sha256"):
            os.utime(copy)
            _write_meta(copy, {**meta, **validators})
            log.info("list %s: same content as the cached copy", url)
            return False
        parsed = await asyncio.to_thread(read_list_file, part, fmt)
        entries = len(parsed.domains) + len(parsed.exceptions)
        previous = int(meta.get("entries", 0))
        if entries == 0 and (previous > 0 or parsed.bad_lines > 0):
            raise DownloadRejected(
                f"suspicious download rejected: no usable entries ({parsed.bad_lines} bad lines), "
                f"the previous copy had {previous}"
            )
        os.replace(part, copy)
        _write_meta(
            copy, {"url": url, **validators, "sha256": sha256, "entries": entries, "downloaded_at": time.time()}
        )
        log.info(
            "list %s: downloaded %.1f kB in %.1f s, %d entries (was %d), %d bad lines",
            url,
            size / 1024,
            time.monotonic() - started,
            entries,
            previous,
            parsed.bad_lines,
        )
        return True


async def _save_body(response: aiohttp.ClientResponse, part: Path, url: str) -> tuple[int, str]:
    """Stream the body into ``part``; returns its size and SHA-256."""
    size = 0
    next_report = PROGRESS_EVERY_BYTES
    digest = hashlib.sha256()
    with open(part, "wb") as out:
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_LIST_BYTES:
                raise DownloadRejected(f"larger than {MAX_LIST_BYTES // (1024 * 1024)} MB")
            digest.update(chunk)
            out.write(chunk)
            if size >= next_report:
                log.info("list %s: %d MB received", url, size // (1024 * 1024))
                next_report += PROGRESS_EVERY_BYTES
    return size, digest.hexdigest()


def _read_meta(copy: Path) -> dict[str, Any]:
    """The stored validators of ``copy``; empty if missing or unreadable (then the next
    download is unconditional, which is safe)."""
    try:
        meta = json.loads(_meta_path(copy).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _write_meta(copy: Path, meta: dict[str, Any]) -> None:
    path = _meta_path(copy)
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(temporary, path)
