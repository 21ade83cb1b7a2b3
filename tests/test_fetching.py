"""List URLs and webhooks reach public addresses only, unless the node's ``fetch_allow``
lists the network; list redirects stay on the configured host; errors never repeat what
the other side sent. Real HTTP servers on loopback (which is "internal" here)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from filterdns.config.loader import ConfigError, config_with_policy, load_config
from filterdns.config.model import CategoryConfig, SourceConfig
from filterdns.fetching import permitted
from filterdns.notify import DeliveryError
from filterdns.notify.webhook import post_webhook
from filterdns.policy.sources import ListDownloader, cached_copy_path
from filterdns.store import OutboxMessage
from tests.support import LOOPBACK
from tests.support.mail import WebhookCall, webhook_receiver

SECRET = "internal-secret-7f3a"


class Internal:
    """A machine inside the network: a list, a redirect to another host and one to itself,
    and an error page that gives things away. Counts what it was asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.path)
        if request.path == "/away":
            raise web.HTTPFound(f"http://localhost:{self.port}/list.txt")
        if request.path == "/moved":
            raise web.HTTPFound("/list.txt")
        if request.path == "/error":
            return web.Response(status=500, reason=f"Reason {SECRET}", text=f"Body {SECRET}")
        return web.Response(text="listed.example\n")


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    state = Internal()
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


def ads(*urls: str) -> list[CategoryConfig]:
    return [CategoryConfig("ads", sources=tuple(SourceConfig(url) for url in urls))]


async def test_internal_addresses_are_not_fetched_by_default(internal: Internal, tmp_path: Path):
    urls = [f"http://127.0.0.1:{internal.port}/list.txt", f"http://localhost:{internal.port}/list.txt",
            f"http://[::ffff:127.0.0.1]:{internal.port}/list.txt"]  # fmt: skip
    downloader = ListDownloader(tmp_path, timeout=5)
    assert not await downloader.refresh(ads(*urls))
    errors = downloader.last_errors()
    assert set(errors) == set(urls)
    assert all("is not a public address, and fetch_allow does not list its network" in e for e in errors.values())
    assert internal.seen == []  # not one request reached it


async def test_fetch_allow_opens_a_network_and_redirects_stay_on_the_host(internal: Internal, tmp_path: Path):
    base = f"http://127.0.0.1:{internal.port}"
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    assert await downloader.refresh(ads(f"{base}/moved", f"{base}/away"))
    assert cached_copy_path(tmp_path, f"{base}/moved").read_text() == "listed.example\n"
    error = downloader.last_errors()[f"{base}/away"]
    assert error == "redirected to another host (localhost); use that address as the URL instead"
    assert internal.seen.count("/list.txt") == 1  # after /moved; /away's target was never asked


async def test_errors_say_nothing_the_server_sent(internal: Internal, tmp_path: Path):
    url = f"http://127.0.0.1:{internal.port}/error"
    downloader = ListDownloader(tmp_path, timeout=5, fetch_allow=LOOPBACK)
    await downloader.refresh(ads(url))
    assert downloader.last_errors()[url] == "HTTP 500 Internal Server Error"


def hook_message(url: str) -> OutboxMessage:
    return OutboxMessage(
        id=1, dedup_key="k", channel="webhook", kind="alert", recipient=url, subject="s", body_text="{}",
        body_html="", headers={}, status="sending", attempts=1, next_attempt=0.0, last_error="", created=0.0,
        sent_at=None,
    )  # fmt: skip


async def test_a_webhook_to_an_internal_address_is_refused_for_good():
    calls: list[WebhookCall] = []
    async with webhook_receiver(calls) as url:
        with pytest.raises(DeliveryError) as refused:
            await post_webhook(hook_message(url), timeout=5)
        assert refused.value.permanent and "not a public address" in refused.value.reason
        assert calls == []
        await post_webhook(hook_message(url), timeout=5, fetch_allow=LOOPBACK)
        assert len(calls) == 1


def test_public_addresses_and_listed_networks_only():
    allow = (ipaddress.ip_network("10.20.0.0/16"),)
    assert permitted("9.9.9.9", ()) and permitted("2620:fe::fe", ())
    for internal in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "fd00::1", "::ffff:10.0.0.1",
                     "100.64.0.1", "0.0.0.0"):  # fmt: skip
        assert not permitted(internal, allow), internal
    assert permitted("10.20.3.4", allow) and permitted("::ffff:10.20.3.4", allow)


def test_fetch_allow_is_the_nodes_setting_not_the_policys(tmp_path: Path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text("fetch_allow: [10.20.0.0/16, 'fd00:20::/64']\n")
    config = load_config(config_file)
    assert config.node.fetch_allow == (ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00:20::/64"))
    assert config_with_policy(config, "default_group: x\n").node.fetch_allow == config.node.fetch_allow
    with pytest.raises(ConfigError, match="fetch_allow: not a policy section"):
        config_with_policy(config, "fetch_allow: [0.0.0.0/0]\n")
