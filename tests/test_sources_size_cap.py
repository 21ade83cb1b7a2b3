"""A list download stops at MAX_LIST_BYTES (256 MB): a server that streams more is cut off
while streaming, the last good copy is kept and no partial file is left behind. Sent over
loopback as a chunked body (no Content-Length to trust), about 256 MB: a few seconds."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from filterdns.config.model import CategoryConfig, SourceConfig
from filterdns.policy.sources import MAX_LIST_BYTES, ListDownloader, cached_copy_path
from tests.support import LOOPBACK

GOOD = b"ads.example.com\ntracker.example.net\n"
CHUNK = b"x.example.org\n" * 73_000  # about 1 MB of valid list lines


def test_the_cap_is_256_megabytes():
    assert MAX_LIST_BYTES == 256 * 1024 * 1024


async def test_a_list_over_the_cap_is_cut_off_and_the_last_good_copy_kept(tmp_path: Path, caplog):
    state = {"huge": False, "sent": 0}

    async def handle(request: web.Request) -> web.StreamResponse:
        if not state["huge"]:
            return web.Response(body=GOOD)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while state["sent"] <= MAX_LIST_BYTES + 4 * len(CHUNK):
                await response.write(CHUNK)
                state["sent"] += len(CHUNK)
        except (ConnectionResetError, ConnectionError):
            pass  # the downloader hung up: what we want
        return response

    app = web.Application()
    app.router.add_get("/list.txt", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/list.txt"
    try:
        downloader = ListDownloader(tmp_path, timeout=60, fetch_allow=LOOPBACK)
        category = CategoryConfig("ads", sources=(SourceConfig(url, "auto"),))
        assert await downloader.refresh([category]) is True
        assert cached_copy_path(tmp_path, url).read_bytes() == GOOD
        state["huge"] = True
        assert await downloader.refresh([category]) is False
    finally:
        await runner.cleanup()
    assert "larger than 256 MB" in downloader.last_errors()[url]
    assert cached_copy_path(tmp_path, url).read_bytes() == GOOD
    assert not list(tmp_path.glob("**/*.part"))
