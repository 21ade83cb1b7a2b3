"""The console's wide pages in Chromium at a desktop's 1280 px and a phone's 390 px (#20
item 6): the outgoing-mail table and the compliance report fit the window, with nothing
pushed off to the side (the outbox's Retry button), no column hidden behind a scrollbar
and no word broken in the middle ("librar y"). A screenshot of each page at each width is
saved in the test's folder for a person to look at.

Setup: a policy with many categories (the compliance report has a count column or entry
for each) and four groups; a failed mail in the outbox with a long subject and a long
error, as a real SMTP refusal reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from playwright.sync_api import Browser, Page  # noqa: E402

from filterdns.config.model import MailConfig  # noqa: E402
from tests.support.browser import CHROMIUM, DESKTOP, PHONE, Site, chromium, console, running_site, store_call  # noqa: E402
from tests.support.server import base_config  # noqa: E402

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian package chromium)", allow_module_level=True)

PASSWORD = "plum-kettle-harbour-42"
CATEGORIES = ("adult", "gambling", "games", "social-networks", "video-streaming", "library", "news-and-media",
              "file-sharing", "proxies-and-vpns", "shopping", "dating", "weapons")  # fmt: skip
LONG_ERROR = (
    "the mail server refused the recipient: 550 5.7.1 <governors-clerk@riverside-academy-trust.example>: "
    "Recipient address rejected: Access denied. AS(201806281) "
    "[AM4PEPF00027A69.eurprd04.prod.outlook.com 2026-12-07T09:15:02.123Z 08DD1A2B3C4D5E6F]"
)


def overflow_config(upstream_port: int) -> dict:
    groups = {
        name: {"description": f"Year {n}", "networks": [f"127.0.{n}.0/24"], "block": list(CATEGORIES[: 4 + n % 5]),
               "rules": [{"during": "lessons", "block": list(CATEGORIES[6:])}]}
        for n, name in ((7, "year7"), (8, "year8"), (9, "year9"), (10, "sixth-form"))
    }  # fmt: skip
    return base_config(
        upstream_port,
        web={"listen": "127.0.0.1:0"},
        timezone="Europe/London",
        categories={c: {"description": f"Sites about {c.replace('-', ' ')}", "domains": [f"{c}.example"]} for c in CATEGORIES},
        schedules={"lessons": {"weekly": {"mon-fri": ["08:45-15:20"]}}},
        groups=groups,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("overflow"), overflow_config, (("ada", "admin", ""),), PASSWORD) as running:
        store_call(running, "enqueue_message", dedup_key="test:overflow", channel="email", kind="digest",
                   recipient="governors-clerk@riverside-academy-trust.example",
                   subject="Online safety at school: week of 30 November – 6 December 2026 (Riverside Academy Trust)",
                   body_text="x")  # fmt: skip
        [claimed] = store_call(running, "claim_messages", 10)
        store_call(running, "mark_failed", claimed, LONG_ERROR, retry=MailConfig(), permanent=True)
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


WIDE_PARTS = """() => {
  const out = [];
  for (const box of document.querySelectorAll('main .scroll, main table')) {
    if (box.scrollWidth > box.clientWidth + 1) out.push(`${box.id || box.className}: ${box.scrollWidth} > ${box.clientWidth}`);
  }
  return out;
}"""
# Cells holding one word (a category, a status) whose text runs over more than one line.
BROKEN_WORDS = """() => {
  const out = [];
  for (const cell of document.querySelectorAll('main th, main td')) {
    for (const node of cell.childNodes) {
      const text = (node.textContent || '').trim();
      if (node.nodeType !== 3 || !/^[A-Za-z-]{4,}$/.test(text)) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      if (tops.size > 1) out.push(text);
    }
  }
  return out;
}"""


def check_page(page: Page, path: str, shot: Path) -> None:
    response = page.goto(path)
    assert response is not None and response.ok, path
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 0
    width = page.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert width[0] <= width[1], (path, width)
    assert page.evaluate(WIDE_PARTS) == [], path
    assert page.evaluate(BROKEN_WORDS) == [], path


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_the_outbox_and_the_compliance_report_fit_the_window(site: Site, browser: Browser, viewport, tmp_path: Path) -> None:
    with console(browser, site.url, viewport) as tab:
        tab.log_in("ada", PASSWORD)
        page = tab.page
        check_page(page, "/outbox", tmp_path / f"outbox-{viewport['width']}.png")
        retry = page.locator("#outbox-messages button[id^=retry-]")
        box = retry.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box
        assert LONG_ERROR[:40] in page.inner_text("#outbox-messages")
        check_page(page, "/compliance", tmp_path / f"compliance-{viewport['width']}.png")
        assert "library" in page.inner_text("#categories-table") and "library" in page.inner_text("#counts-table")
        assert tab.dialogs == []
