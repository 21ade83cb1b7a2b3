"""A real Chromium for console tests, driven by Playwright.

The browser is Debian's ``chromium`` package, never one Playwright downloads: offline school
networks (and CI here) cannot fetch browser builds, so ``playwright install`` is never run
and ``executable_path`` points at the system binary. Playwright's ``launch`` gives every
browser a fresh temporary profile, and each ``Console`` its own context (cookies, storage),
so two people signed in side by side never share a session.

Everything the browser is told to load is on 127.0.0.1; the flags below also switch off the
background traffic Chromium would otherwise start by itself (updates, sync, QUIC probes).

A browser test module drives one real ``filterdns serve`` (a ``Site`` from ``running_site``,
with its accounts made before it starts) and reaches the server's database with
``store_call``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Dialog, Page, sync_playwright

from filterdns.store import StoreConfig, open_store
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import FilterDnsProcess

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LAUNCH_TIMEOUT_MS = 30_000
ACTION_TIMEOUT_MS = 10_000  # any click, fill or wait: generous, as CI machines may be busy
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone's CSS width


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless system Chromium, closed (with its temporary profile) on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(LAUNCH_ARGS), timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class Site:
    """The running ``filterdns serve`` a browser test module drives, and its data folder."""

    server: FilterDnsProcess
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.console_url


@contextmanager
def running_site(
    workdir: Path, config: Callable[[int], dict], accounts: Iterable[tuple[str, str, str]], password: str
) -> Iterator[Site]:
    """``filterdns serve`` in ``workdir`` with a fake upstream DNS server: ``config`` makes
    its config from the upstream's port; each account (name, role, comma-separated groups)
    is made, with ``password``, before the server starts."""
    with FakeUpstream() as upstream:
        server = FilterDnsProcess(config(upstream.port), workdir)
        server.write_config()
        for name, role, groups in accounts:
            _add_account(server.config_path, name, role, groups, password)
        with server:
            yield Site(server, workdir / "data")


def _add_account(config_path: Path, name: str, role: str, groups: str, password: str) -> None:
    """``filterdns user add``, the way an administrator makes accounts on the server."""
    # -c belongs to ``user``, before its sub-command
    command = [sys.executable, "-m", "filterdns", "user", "-c", str(config_path), "add", name, "--role", role, "--password-stdin"]
    if groups:
        command += ["--groups", groups]
    result = subprocess.run(
        command, check=False, input=password + "\n", capture_output=True, text=True, timeout=30,
        cwd=config_path.parent,  # as FilterDnsProcess does: both run the same installed filterdns
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def store_call(site: Site, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call the Store API on the server's own database file. In a thread of its own because
    Playwright's sync API keeps an event loop on the test's thread."""

    async def run() -> Any:
        store = await open_store(StoreConfig(node="browser-test"), site.data_dir)
        try:
            return await getattr(store, method)(*args, **kwargs)
        finally:
            await store.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=10)


class Console:
    """One person's tab on the staff console, in a browser context of its own.

    Every JavaScript dialog (``alert`` and friends) is recorded in ``dialogs`` and dismissed:
    a console page must never raise one, so tests assert the list stays empty.
    ``context_options`` are Playwright's ``new_context`` options beyond these (``locale``: the
    language Chromium asks pages in).
    """

    def __init__(self, browser: Browser, base_url: str, viewport: dict[str, int] = DESKTOP, **context_options: Any):
        self.context: BrowserContext = browser.new_context(base_url=base_url, viewport=viewport, **context_options)
        self.context.set_default_timeout(ACTION_TIMEOUT_MS)
        self.page: Page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def log_in(self, name: str, password: str) -> None:
        """Sign in through the login form, as a person would, and land on the dashboard."""
        page = self.page
        page.goto("/login")
        page.fill("#username", name)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("#login-submit")
        if urlsplit(page.url).path == "/login":  # refused: the page says why
            raise AssertionError(f"logging in as {name} failed: {page.inner_text('main')}")
        assert page.inner_text(".who").startswith(f"{name} · ")

    def open(self, path: str) -> Page:
        """Go to ``path`` on the console; fails on any error status."""
        response = self.page.goto(path)
        assert response is not None and response.ok, f"{path}: HTTP {response.status if response else '?'}"
        return self.page

    def options(self, select: str) -> list[str]:
        """The values a ``<select>`` offers."""
        return self.page.eval_on_selector_all(f"{select} option", "options => options.map(o => o.value)")

    def column(self, table: str, index: int) -> list[str]:
        """The text of column ``index`` (0-based) in every body row of ``table``."""
        return [cell.strip() for cell in self.page.locator(f"{table} tbody tr td:nth-child({index + 1})").all_inner_texts()]

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (0: nothing to scroll sideways)."""
        return self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")

    def close(self) -> None:
        self.context.close()


@contextmanager
def console(
    browser: Browser, base_url: str, viewport: dict[str, int] = DESKTOP, **context_options: Any
) -> Iterator[Console]:
    """A ``Console`` tab, closed (cookies and all) on exit."""
    tab = Console(browser, base_url, viewport, **context_options)
    try:
        yield tab
    finally:
        tab.close()
