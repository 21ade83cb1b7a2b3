"""The example school (config.yaml) as its families read it, in English and in Brazilian
Portuguese: the class report, the weekly digest through a real SMTP server (aiosmtpd), the
block page and the family pages (login, forgotten password, privacy notice, home).

Every pt-BR render is walked for English left over from the catalogue: any run of a
translated message id's own words showing in the visible text fails the test, wherever
it came from (template, Python or configuration). The same renders show that a zero reads
"none"/"nenhum", that the privacy sentences give the retention in days from the config,
and that help comes from the school's country and its configured contact."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from filterdns import i18n
from filterdns.config.loader import load_config
from filterdns.config.model import Config
from filterdns.notify.delivery import OutboxDelivery
from filterdns.reports.digest import DigestComposer
from filterdns.reports.weekly import Week
from filterdns.web.blockpage import start_blockpage
from tests.support.mail import Inbox
from tests.support.web import Console, FakeControl, event, make_console
from tests.test_web_digest import smtp  # noqa: F401  (the fixture: a real SMTP server)

REPO = Path(__file__).resolve().parents[1]
PORTUGUESE = {k: v for k, v in i18n.parse_po(i18n.po_path(i18n.language("pt-BR")).read_text()).items() if k}
PARENT = "rosa@example.org"


class _Text(HTMLParser):
    """The visible text of a page: text nodes, without scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._skip += tag in ("script", "style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(unescape(" ".join(parser.parts)).split())


def english_left(text: str) -> list[str]:
    """Translated catalogue entries whose English words show in ``text``: each run of 14 or
    more characters between a message id's placeholders counts, unless the translation
    keeps the same words (a proper name, a law's title)."""
    left = []
    for message, translation in PORTUGUESE.items():
        if "\0" in message or translation == message:
            continue
        for run in re.split(r"%\(\w+\)s", message):
            run = run.strip(" .,:;–-“”")
            if len(run) >= 14 and " " in run and run in text and run not in translation:
                left.append(message)
                break
    return left


def example_school(tmp_path: Path, *, smtp_port: int, base_url: str) -> Config:
    """config.yaml as shipped, with mail through the test's SMTP server, links to the test
    console, and the store kept 21 days (so the privacy sentences must say 21, not 30)."""
    config = load_config(REPO / "config.yaml")
    node = config.node
    return config.with_node(
        mail=replace(node.mail, host="127.0.0.1", port=smtp_port, security="none", sender="filter@riverside.example"),
        web=replace(node.web, public_url=base_url),
        store=replace(node.store, raw_events_days=21),
    )


@pytest.fixture
async def school(tmp_path: Path, smtp: tuple[Inbox, int]) -> AsyncIterator[Console]:
    """The console serving the example school, a Year 7 parent, and this week's lookups:
    social blocked for four devices (shown), games for one (masked), adult for none."""
    async with make_console(tmp_path) as console:
        base = str(console.client.make_url("/")).rstrip("/")
        console.control.config = example_school(tmp_path, smtp_port=smtp[1], base_url=base)
        await console.add_user(PARENT, "parent", ["year7"])
        await console.store.save_parent_profile(PARENT, [("Lia", "year7")])
        zone = ZoneInfo("Europe/London")
        today = datetime.now(zone).replace(hour=10, minute=0, second=0, microsecond=0)
        t = min(today.timestamp(), time.time() - 60)
        await console.store.insert_events(
            [event("www.tiktok.com", "year7", client=f"10.10.7.{i}", verdict="blocked", category="social", t=t)
             for i in range(1, 5)]
            + [event("www.roblox.com", "year7", client="10.10.7.9", verdict="blocked", category="games", t=t)]
            + [event("example.org", "year7", client=f"10.10.7.{i}", t=t) for i in range(1, 6)]
        )  # fmt: skip
        yield console


async def family_pages(console: Console, language: str) -> dict[str, str]:
    """The family pages in ``language`` (asked for by the browser)."""
    headers = {"Accept-Language": language}

    async def get(path: str) -> str:
        response = await console.client.get(path, headers=headers)
        assert response.status == 200, (path, response.status)
        return await response.text()

    pages = {path: await get(path) for path in ("/family/login", "/family/forgot", "/family/privacy")}
    await console.logged_in(PARENT)
    pages["/family"] = await get("/family")
    pages["/reports/year7"] = await get("/reports/year7")
    console.client.session.cookie_jar.clear()
    return pages


async def digest(console: Console, inbox: Inbox, language: str) -> tuple[str, str]:
    """This week's digest for the parent in ``language``, as the SMTP server received it."""
    await console.store.set_parent_language(PARENT, language)
    config = console.control.config
    week = Week.containing(datetime.now(ZoneInfo(config.policy.timezone)).date(), ZoneInfo(config.policy.timezone))
    user = await console.store.get_user(PARENT)
    mail = await DigestComposer(console.store, config, week, now=time.time()).compose(
        user, await console.store.get_parent_profile(PARENT)
    )
    assert mail is not None and mail.language == language
    await console.store.enqueue_message(
        dedup_key=f"{mail.dedup_key}:{language}", channel="email", kind="digest", recipient=PARENT,
        subject=mail.subject, body_text=mail.text, body_html=mail.html, headers=mail.headers,
    )  # fmt: skip
    assert await OutboxDelivery(console.store, config.node.mail).run_once() == 1
    received: EmailMessage = inbox.to(PARENT)[-1]
    text, html = received.get_body(("plain",)), received.get_body(("html",))
    assert text is not None and html is not None
    return " ".join(text.get_content().split()), visible(html.get_content())


async def block_page(console: Console, tmp_path: Path, language: str) -> str:
    """The block page for an adult site asked from 127.0.0.1 (the example's guests)."""
    control = FakeControl(console.control.config, console.store)
    runner = await start_blockpage(control, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as session:
            headers = {"Host": "www.pornhub.com", "Accept-Language": language}
            async with session.get(f"http://{host}:{port}/", headers=headers) as response:
                assert response.status == 403
                return await response.text()
    finally:
        await runner.cleanup()


async def test_the_example_school_in_brazilian_portuguese_has_no_english_left(
    school: Console, smtp: tuple[Inbox, int], tmp_path: Path
):
    renders = {path: visible(html) for path, html in (await family_pages(school, "pt-BR")).items()}
    renders["digest (text)"], renders["digest (HTML)"] = await digest(school, smtp[0], "pt-BR")
    renders["block page"] = visible(await block_page(school, tmp_path, "pt-BR"))
    for where, text in renders.items():
        assert english_left(text) == [], where
    report, (mail_text, mail_html) = renders["/reports/year7"], (renders["digest (text)"], renders["digest (HTML)"])
    # A zero is "nenhum", not "menos de 3"; masked figures still read "menos de 3".
    assert re.search(r"Conteúdo adulto nenhum", report) and "menos de 3" in report
    assert "Nenhum acesso bloqueado em: Conteúdo adulto" in mail_text and "menos de 3 aparelhos em: Jogos on-line" in mail_text
    # Retention in days from the config (raw events 21 days here, counts 400).
    for text in (report, mail_text, mail_html, renders["/family"], renders["/family/privacy"]):
        assert "por 21 dias, ela pode consultar o registro do filtro" in text and "guardadas por 400 dias" in text
    # Help: the school's configured contact, and its country's helplines (an English
    # school: Childline and Samaritans, whatever the reader's language).
    for text in (report, mail_text, renders["/family"], renders["/family/privacy"]):
        assert "Ms Jane Okafor" in text and "safeguarding@riverside.example" in text
        assert "Childline" in text and "0800 1111" in text and "116 123" in text and "CVV – Centro" not in text
    assert "Year 7 pupils (age 11-12)" not in renders["block page"]  # asked from the guests' network
    assert "Este site está bloqueado na escola" in renders["block page"] and "Conteúdo adulto" in renders["block page"]


async def test_the_example_school_in_english(school: Console, smtp: tuple[Inbox, int], tmp_path: Path):
    pages = {path: visible(html) for path, html in (await family_pages(school, "en-GB")).items()}
    report = pages["/reports/year7"]
    assert re.search(r"Adult content none", report) and "fewer than 3" in report
    assert "for 21 days they can search the filter's log" in report and "kept for 400 days" in report
    assert "to reduce the risk of identifying a pupil" in report and "never shows" not in report
    assert len(english_left(report)) > 20  # the walker finds English where there is English
    mail_text, _ = await digest(school, smtp[0], "en")
    assert "No blocked lookups in: Adult content" in mail_text and "blocked attempts" not in mail_text
    assert "At school: Ms Jane Okafor, Designated safeguarding lead, 020 7946 0000" in mail_text
    html = await block_page(school, tmp_path, "en-GB")
    page = visible(html)
    assert "Your group Visitors, parents and contractors on the guest Wi-Fi" in page and "Category Adult content" in page
    assert "<dd>guests</dd>" not in html and "<dd>adult</dd>" not in html and "“adult”" not in html


async def test_a_brazilian_school_gets_brazilian_help_and_its_language_by_default(
    school: Console, smtp: tuple[Inbox, int], tmp_path: Path
):
    config = school.control.config
    school.control.config = config.with_node(reports=replace(config.node.reports, language="pt-BR"))
    pages = await family_pages(school, "de")  # a language we lack: the school's
    home = visible(pages["/family"])
    assert '<html lang="pt-BR">' in pages["/family"]
    assert "CVV – Centro de Valorização da Vida · 188" in home and "Conselho Tutelar" in home and "Childline" not in home
    assert "(ECA, artigos 13 e 245)" in home
    assert "LGPD" in visible(pages["/family/privacy"]) and "ANPD" in visible(pages["/family/privacy"])
    page = await block_page(school, tmp_path, "")
    assert '<html lang="pt-BR">' in page
