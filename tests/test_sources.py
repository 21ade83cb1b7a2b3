"""List downloads against a local HTTP server, and building the category set from local files,
inline domains and the downloaded copies."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import os
import pickle
import socket
from pathlib import Path

import pytest
from aiohttp import web

from filterdns.config.model import CategoryConfig, SourceConfig
from filterdns.policy.categories import build_category_set
from filterdns.policy.sources import ListDownloader, cached_copy_path
from tests.support import LOOPBACK

LAST_MODIFIED = "Sun, 24 Jul 2022 12:29:21 GMT"


class ListServer:
    """Serves ``body`` at every path. ``/etag/...`` answers with an ETag, ``/date/...`` with only
    Last-Modified, ``/plain/...`` with no validators; 304s are counted."""

    def __init__(self) -> None:
        self.body = b"# list\nads.example.com\n0.0.0.0 tracker.example.net\n"
        self.status = 200
        self.stall = False  # hold responses until ``released`` is set (the fixture sets it at the end)
        self.released = asyncio.Event()
        self.requests = 0
        self.not_modified = 0
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.stall:
            await self.released.wait()
        if self.status != 200:
            return web.Response(status=self.status, text="upstream is broken")
        kind = request.match_info["kind"]
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        headers = {}
        if kind == "etag":
            headers["ETag"] = etag
            if request.headers.get("If-None-Match") == etag:
                self.not_modified += 1
                return web.Response(status=304, headers=headers)
        elif kind == "date":
            headers["Last-Modified"] = LAST_MODIFIED
            if request.headers.get("If-Modified-Since") == LAST_MODIFIED:
                self.not_modified += 1
                return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, headers=headers)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"


@pytest.fixture
async def server():
    state = ListServer()
    app = web.Application()
    app.router.add_get("/{kind}/{name}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base = "http://127.0.0.1:%d" % runner.addresses[0][1]
    try:
        yield state
    finally:
        state.released.set()
        await runner.cleanup()


def _category(*urls: str, name: str = "ads", fmt: str = "auto") -> CategoryConfig:
    return CategoryConfig(name, sources=tuple(SourceConfig(url, fmt) for url in urls))  # type: ignore[arg-type]


def _age(path: Path, seconds: float = 3600) -> None:
    old = path.stat().st_mtime - seconds
    os.utime(path, (old, old))


async def test_download_then_not_modified_by_etag(server: ListServer, tmp_path: Path) -> None:
    url = server.url("etag/hosts.txt")
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    assert await downloader.refresh([_category(url)]) is True
    copy = cached_copy_path(tmp_path, url)
    assert copy.read_bytes() == server.body
    _age(copy)
    aged = copy.stat().st_mtime

    assert await downloader.refresh([_category(url)]) is False
    assert server.not_modified == 1
    assert copy.stat().st_mtime > aged  # a 304 confirms the copy: its time moves on
    assert downloader.last_errors() == {}


async def test_not_modified_by_last_modified_date(server: ListServer, tmp_path: Path) -> None:
    url = server.url("date/list.txt")
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    assert await downloader.refresh([_category(url)]) is True
    assert await downloader.refresh([_category(url)]) is False
    assert server.not_modified == 1


async def test_changed_list_replaces_the_copy(server: ListServer, tmp_path: Path) -> None:
    url = server.url("etag/list.txt")
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    await downloader.refresh([_category(url)])
    server.body = b"new.example.org\n"
    assert await downloader.refresh([_category(url)]) is True
    assert cached_copy_path(tmp_path, url).read_bytes() == b"new.example.org\n"


async def test_same_bytes_without_validators_is_unchanged(server: ListServer, tmp_path: Path) -> None:
    url = server.url("plain/list.txt")
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    assert await downloader.refresh([_category(url)]) is True
    assert await downloader.refresh([_category(url)]) is False
    assert server.requests == 2 and server.not_modified == 0


async def test_server_error_keeps_the_last_good_copy_and_is_logged_once(
    server: ListServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.url("etag/list.txt")
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    await downloader.refresh([_category(url)])
    good = cached_copy_path(tmp_path, url).read_bytes()
    server.status = 500
    with caplog.at_level(logging.INFO, logger="filterdns.lists"):
        for _ in range(3):
            assert await downloader.refresh([_category(url)]) is False
        assert cached_copy_path(tmp_path, url).read_bytes() == good
        assert "500" in downloader.last_errors()[url]
        server.status = 200
        await downloader.refresh([_category(url)])
        await downloader.refresh([_category(url)])
    assert downloader.last_errors() == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"list {url}: download failed (HTTP 500 Internal Server Error); keeping the previous copy"]
    assert [r.getMessage() for r in caplog.records if "work again" in r.getMessage()] == [f"list {url}: downloads work again"]


async def test_response_without_domains_is_rejected(server: ListServer, tmp_path: Path) -> None:
    url = server.url("etag/list.txt")
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    await downloader.refresh([_category(url)])
    good = cached_copy_path(tmp_path, url).read_bytes()
    server.body = b"<html><body>Service temporarily unavailable</body></html>\n"
    assert await downloader.refresh([_category(url)]) is False
    assert cached_copy_path(tmp_path, url).read_bytes() == good
    assert "suspicious" in downloader.last_errors()[url]
    assert not list(tmp_path.glob("*.part"))


async def test_timeout_is_recorded_not_raised(server: ListServer, tmp_path: Path) -> None:
    server.stall = True
    url = server.url("etag/slow.txt")
    downloader = ListDownloader(tmp_path, timeout=0.2, fetch_allow=LOOPBACK)
    assert await downloader.refresh([_category(url)]) is False
    assert url in downloader.last_errors()
    assert not cached_copy_path(tmp_path, url).exists()


async def test_unreachable_server_is_recorded(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/list.txt"
    downloader = ListDownloader(tmp_path, timeout=2, fetch_allow=LOOPBACK)
    assert await downloader.refresh([_category(url)]) is False
    assert url in downloader.last_errors()


async def test_url_shared_by_categories_is_fetched_once(server: ListServer, tmp_path: Path) -> None:
    url = server.url("etag/shared.txt")
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    await downloader.refresh([_category(url, name="a"), _category(url, name="b")])
    assert server.requests == 1


def test_cached_copy_names_are_readable_and_distinct(tmp_path: Path) -> None:
    one = cached_copy_path(tmp_path, "https://a.example/lists/hosts")
    two = cached_copy_path(tmp_path, "https://b.example/other/hosts")
    assert one.parent == tmp_path and one.name.startswith("hosts-")
    assert one != two
    assert cached_copy_path(tmp_path, "https://a.example/").name.startswith("list-")


# -- building the category set -------------------------------------------------------------------


async def test_category_set_from_files_downloads_and_inline_domains(
    server: ListServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    base = tmp_path / "config"
    (base / "lists").mkdir(parents=True)
    (base / "lists" / "games.txt").write_text("games.example.com\nnot a domain\n||adblock-style.example^\n")
    (base / "lists" / "social.txt.gz").write_bytes(gzip.compress(b"social.example.com\n@@||ok.social.example.com^\n"))
    downloaded = server.url("etag/ads.txt")
    missing_url = server.url("etag/never-fetched.txt")
    await ListDownloader(cache, timeout=5, fetch_allow=LOOPBACK).refresh([_category(downloaded)])

    categories = [
        CategoryConfig("ads", "Advertising", sources=(SourceConfig(downloaded), SourceConfig(missing_url))),
        CategoryConfig("games", sources=(SourceConfig("lists/games.txt"), SourceConfig("lists/absent.txt"))),
        CategoryConfig(
            "social", sources=(SourceConfig("lists/social.txt.gz"),), domains=("Extra.Example.com", "bad..")
        ),
    ]
    with caplog.at_level(logging.INFO, logger="filterdns.lists"):
        result = build_category_set(categories, cache, base)

    assert result.names == ("ads", "games", "social")
    assert result.descriptions["ads"] == "Advertising"
    index = result.index
    assert index.match("x.tracker.example.net") == result.mask_of(["ads"]) == 0b001
    assert index.match("games.example.com") == index.match("adblock-style.example") == 0b010
    assert index.match("www.social.example.com") == 0b100
    assert index.match("ok.social.example.com") == 0
    assert index.match("extra.example.com") == 0b100
    assert result.names_in(0b101) == ["ads", "social"]
    with pytest.raises(KeyError):
        result.mask_of(["nope"])

    status = {(s.category, s.location): s for s in result.statuses}
    assert status["ads", downloaded].entries == 2 and status["ads", downloaded].error is None
    assert status["ads", downloaded].last_refresh == cached_copy_path(cache, downloaded).stat().st_mtime
    assert "not downloaded" in (status["ads", missing_url].error or "")
    games = status["games", "lists/games.txt"]
    assert (games.entries, games.bad_lines, games.bad_examples) == (2, 1, [(2, "not a domain")])
    assert "absent.txt" in (status["games", "lists/absent.txt"].error or "")
    assert status["social", "lists/social.txt.gz"].exceptions == 1
    inline = status["social", "inline"]
    assert (inline.entries, inline.bad_lines, inline.last_refresh) == (1, 1, None)

    messages = [record.getMessage() for record in caplog.records if record.name == "filterdns.lists"]
    assert any("lists/games.txt: 2 entries" in m and "1 bad lines" in m for m in messages)
    assert any(m.startswith("lists loaded: 7 distinct domains in 3 categories") for m in messages)


def test_category_set_pickles(tmp_path: Path) -> None:
    result = build_category_set([CategoryConfig("a", domains=("a.example",))], tmp_path, tmp_path)
    copy = pickle.loads(pickle.dumps(result))
    assert copy.names == ("a",) and copy.index.match("www.a.example") == 1
    assert copy.statuses == result.statuses


def test_no_categories_and_too_many(tmp_path: Path) -> None:
    empty = build_category_set([], tmp_path, tmp_path)
    assert empty.names == () and empty.index.match("example.com") == 0
    with pytest.raises(ValueError, match="at most 64"):
        build_category_set([CategoryConfig(f"c{i}") for i in range(65)], tmp_path, tmp_path)
