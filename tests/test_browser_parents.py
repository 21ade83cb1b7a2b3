"""A parent's view of the weekly class report in a real browser, against a real
``filterdns serve`` process: logging in through the family login form, their own class with
real numbers, small counts masked, another class refused with a readable page, the page in
Brazilian Portuguese (by the parent's own setting, and by a Brazilian browser's language),
and the report on a phone.

Setup: year7 and year8 are two classes; the parents ana and bia (accounts made with
``filterdns user add``, as an administrator would) each have a child in year7. This week's
counts are written straight into the server's database (synthetic events): year7 made 54
lookups, 14 of them blocked, 12 as games and 2 as social (under the threshold of 3, so
shown as "fewer than 3"); year8's 5 blocks must never show to these parents. Each test
uses its own parent tab; the one that changes ana's language setting puts it back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from playwright.sync_api import Browser  # noqa: E402

from filterdns.reports.weekly import Week  # noqa: E402
from filterdns.resolver.events import QueryEvent  # noqa: E402
from tests.support.browser import CHROMIUM, DESKTOP, PHONE, Console, Site, chromium, running_site, store_call  # noqa: E402
from tests.support.server import base_config  # noqa: E402

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian package chromium)", allow_module_level=True)

ZONE = "America/Sao_Paulo"
PASSWORD = "plum-kettle-harbour-42"
ANA = "ana@example.org"  # changes her language setting
BIA = "bia@example.org"  # never does: her browser speaks Portuguese
CHILDREN = {ANA: "Rafa", BIA: "Duda"}
MASK_BELOW = 3
# (group, verdict, category, how many) this week
COUNTS = (
    ("year7", "allowed", "", 40),
    ("year7", "blocked", "games", 12),
    ("year7", "blocked", "social", 2),
    ("year8", "blocked", "games", 5),
)


def parents_config(upstream_port: int) -> dict:
    return base_config(
        upstream_port,
        timezone=ZONE,
        web={"listen": "127.0.0.1:0"},
        reports={"mask_below": MASK_BELOW},
        categories={
            "games": {"description": "Online games", "domains": ["games.example"]},
            "social": {"description": "Social networks", "domains": ["social.example"]},
        },
        groups={
            "year7": {"description": "Year 7", "networks": ["127.0.0.2/32"], "block": ["games", "social"]},
            "year8": {"description": "Year 8", "networks": ["127.0.0.3/32"], "block": ["games"]},
        },
    )


def this_weeks_events() -> list[QueryEvent]:
    zone = ZoneInfo(ZONE)
    week = Week.containing(datetime.now(zone).date(), zone)
    when = max(time.time() - 60, week.since + 1)  # this week, whatever the time now
    # Each lookup from a device of its own: a figure needs devices, not only lookups, to show.
    return [
        QueryEvent(
            time=when, client=f"127.0.{2 if group == 'year7' else 3}.{i + 1}", group=group, name=f"n{i}.example",
            qtype=1, verdict=verdict, reason=f"category:{category}" if category else "", category=category, rcode=0,
            latency_ms=1.0, answered_by="policy" if verdict == "blocked" else "cache", transport="udp",
        )
        for group, verdict, category, n in COUNTS
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    accounts = [(parent, "parent", "year7") for parent in CHILDREN]
    with running_site(tmp_path_factory.mktemp("parents"), parents_config, accounts, PASSWORD) as running:
        for parent, child in CHILDREN.items():
            store_call(running, "save_parent_profile", parent, [(child, "year7")])
        store_call(running, "insert_events", this_weeks_events())
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class FamilyTab(Console):
    """A parent's tab: the console tab's helpers in a browser context that speaks
    ``locale`` (Chromium sends it as Accept-Language), logged in by the family form."""

    def family_log_in(self, name: str) -> None:
        page = self.page
        page.goto("/family/login")
        page.fill("#family-email", name)
        page.fill("#family-password", PASSWORD)
        with page.expect_navigation():
            page.click("#family-login-submit")
        if urlsplit(page.url).path != "/family":
            raise AssertionError(f"logging in as {name} failed: {page.inner_text('main')}")


@pytest.fixture
def family(site: Site, browser: Browser) -> Iterator[Callable[..., FamilyTab]]:
    """Opens parent tabs (``family(name, locale=..., viewport=...)``), closed afterwards."""
    tabs: list[FamilyTab] = []

    def open_tab(name: str, *, locale: str = "en-GB", viewport: dict[str, int] = DESKTOP) -> FamilyTab:
        tab = FamilyTab(browser, site.url, locale=locale, viewport=viewport)
        tabs.append(tab)
        tab.family_log_in(name)
        return tab

    yield open_tab
    for tab in tabs:
        assert tab.dialogs == []
        tab.close()


def texts_equal_to(tab: Console, value: str) -> list[str]:
    """The tags of elements whose own text is exactly ``value``: a count shown anywhere,
    except the chart's axis labels (numbers on its scale, not counts)."""
    return tab.page.evaluate(
        """value => [...document.querySelectorAll('body *')]
            .filter(e => !e.matches('svg .axis'))
            .filter(e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim() === value))
            .map(e => e.tagName + '#' + e.id)""",
        value,
    )


def test_a_parent_sees_their_class_with_small_counts_masked(family) -> None:
    ana = family(ANA)
    page = ana.page
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.inner_text("h1") == "Your children's classes"
    assert "Rafa" in page.inner_text("#classes") and page.locator("#class-year8").count() == 0
    page.click("#class-year7")
    page.wait_for_url(re.compile(r"/reports/year7$"))

    assert page.inner_text("h1") == "Online safety report: class year7"
    assert page.inner_text("#lookups") == "54" and page.inner_text("#blocked") == "14"
    assert page.inner_text("#count-games") == "12"
    assert page.inner_text("#category-games .category-title") == "Online games"
    assert page.inner_text("#count-social") == f"fewer than {MASK_BELOW}"
    assert page.locator("#count-social .masked").count() == 1
    # The real number is nowhere: not in the social section, not as any figure on the page.
    assert "2" not in page.inner_text("#category-social")
    assert texts_equal_to(ana, "2") == []
    assert texts_equal_to(ana, "5") == []  # year8's blocks
    assert "Year 8" not in page.inner_text("body")


def test_another_class_is_refused_with_a_readable_page(family) -> None:
    ana = family(ANA)
    page = ana.page
    response = page.goto("/reports/year8")
    assert response is not None and response.status in (403, 404)
    assert page.inner_text("h1") == "Not one of your classes"
    assert page.inner_text("#message") == "You can see the reports of your own child's classes only."
    assert page.locator("#report").count() == 0 and page.locator("[id^=count-]").count() == 0
    page.click("#message-home")  # a way back, not a dead end
    page.wait_for_url(re.compile(r"/family$"))


def test_the_parents_language_setting_gives_the_portuguese_report(family) -> None:
    ana = family(ANA)
    page = ana.page
    try:
        page.select_option("#language-select", "pt-BR")
        page.click("#language-save")
        page.wait_for_url(re.compile(r"/family\?saved=1$"))
        assert page.inner_text("#notice") == "Salvo."
        assert page.inner_text("h1") == "Turmas sob sua responsabilidade"

        ana.open("/reports/year7")
        assert page.locator("html").get_attribute("lang") == "pt-BR"
        assert page.inner_text("h1") == "Relatório de segurança on-line: turma year7"
        assert page.inner_text("#categories h2") == "O que foi bloqueado e por quê"
        assert page.inner_text("#category-games .category-title") == "Jogos on-line"
        assert page.inner_text("#category-social .category-title") == "Redes sociais"
        assert page.inner_text("#count-social") == f"menos de {MASK_BELOW}"
        assert page.inner_text("#count-games") == "12"
        assert "Dicas para as famílias" in page.inner_text("#categories")
        response = page.goto("/reports/year8")
        assert response is not None and response.status == 403
        assert page.inner_text("h1") == "Esta não é uma das suas turmas"
    finally:
        ana.open("/family")
        page.select_option("#language-select", "")
        page.click("#language-save")
        page.wait_for_url(re.compile(r"/family\?saved=1$"))
    assert page.inner_text("#notice") == "Saved."  # the browser's language (English) again


def test_a_brazilian_browser_gets_the_portuguese_pages_without_a_setting(site: Site, browser: Browser, family) -> None:
    # Before logging in: the family login form already speaks the browser's language.
    with_locale = FamilyTab(browser, site.url, locale="pt-BR")
    try:
        with_locale.page.goto("/family/login")
        assert with_locale.page.inner_text("label[for=family-email]") == "Endereço de e-mail"
        assert with_locale.page.inner_text("#family-login-submit") == "Entrar"
    finally:
        with_locale.close()

    bia = family(BIA, locale="pt-BR")
    page = bia.page
    assert page.inner_text("h1") == "Turmas sob sua responsabilidade"
    assert "Duda" in page.inner_text("#classes")
    bia.open("/reports/year7")
    assert page.locator("html").get_attribute("lang") == "pt-BR"
    assert page.inner_text("h1") == "Relatório de segurança on-line: turma year7"
    assert page.inner_text("#count-social") == f"menos de {MASK_BELOW}"
    # The switcher still offers English, kept in the page's links.
    page.click("#lang-en")
    page.wait_for_url(re.compile(r"lang=en"))
    assert page.inner_text("h1") == "Online safety report: class year7"


def test_the_report_fits_a_phone(family, tmp_path: Path) -> None:
    ana = family(ANA, viewport=PHONE)
    assert ana.horizontal_overflow() <= 1  # the list of classes
    ana.open("/reports/year7")
    assert ana.page.inner_text("#count-social") == f"fewer than {MASK_BELOW}"
    assert ana.horizontal_overflow() <= 1
    assert ana.page.locator("svg.chart").bounding_box()["width"] <= PHONE["width"]
    ana.page.screenshot(path=tmp_path / "report-phone.png", full_page=True)
    assert (tmp_path / "report-phone.png").stat().st_size > 0
