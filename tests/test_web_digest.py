"""The weekly digest end to end: the job queues it, the outbox delivers it to a real SMTP
server (aiosmtpd on 127.0.0.1) as a text and an HTML part, nothing goes out twice (also
after a restart), and the unsubscribe link in the mail works through the real console
(asking first, then unsubscribing, also as a one-click POST without session or CSRF
token) so the next week's digest is not sent. And the setting on the parent's page."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from filterdns.config.loader import load_config
from filterdns.config.model import Config
from filterdns.links import unsubscribe_path, unsubscribe_secret, unsubscribe_token
from filterdns.notify.delivery import OutboxDelivery
from filterdns.reports.digest import digest_week
from filterdns.reports.digest_job import DigestJob, next_send_moment
from filterdns.store import AuditFilter, StoreConfig, open_store
from tests.support.mail import Inbox, smtp_server
from tests.support.web import CONFIG_YAML, Console, make_console
from tests.support.web import event as support_event
from tests.test_digest import SEND, WEEK_EVENTS, flat

WEEK = 7 * 24 * 3600.0


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    inbox = Inbox()
    async with smtp_server(inbox) as port:
        yield inbox, port


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async with make_console(tmp_path) as console:
        yield console


def mail_config(tmp_path: Path, console: Console, smtp_port: int = 2525, *, mail: bool = True) -> Config:
    """The console's config with mail through ``smtp_port`` and links to the console."""
    base = str(console.client.make_url("/")).rstrip("/")
    path = tmp_path / "digest.yaml"
    path.write_text(
        CONFIG_YAML
        + (f"mail: {{host: 127.0.0.1, port: {smtp_port}, security: none, from: filter@school.example}}\n" if mail else "")
        + f"web: {{public_url: '{base}'}}\nreports: {{digest: {{day: mon, time: '07:30'}}}}\n"
    )
    return load_config(path)


async def add_parent(console: Console, email: str, group: str, child: str, language: str = "") -> None:
    await console.add_user(email, "parent", [group])
    await console.store.save_parent_profile(email, [(child, group)])
    await console.store.set_parent_language(email, language)


def parts(mail: EmailMessage) -> tuple[str, str]:
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def test_the_digest_reaches_a_real_mail_server_once_and_stops_after_unsubscribing(
    console: Console, smtp: tuple[Inbox, int], tmp_path: Path
):
    inbox, port = smtp
    config = console.control.config = mail_config(tmp_path, console, port)
    store = console.store
    await store.insert_events(WEEK_EVENTS)
    await add_parent(console, "ana@example.org", "7b", "Bia")
    await add_parent(console, "gil@example.org", "8c", "Caio", "pt-BR")
    job = DigestJob(store, lambda: console.control.config)
    delivery = OutboxDelivery(store, config.node.mail)

    assert (await job.run_once(now=SEND + 60)).queued == 2
    assert await delivery.run_once(now=SEND + 61) == 2
    [mail] = inbox.to("ana@example.org")
    assert mail["Subject"] == "Online safety at school: week of 9–15 November"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = parts(mail)
    # The week's events of class 7b (the support config blocks adult and games there).
    for line in ("Week of 9–15 November", "== Class 7b (Bia) ==", "33 protected lookups", "9 blocked lookups"):
        assert line in text, line
    assert "Blocked lookups from fewer than 3 devices in: Online games." in flat(text) and "No blocked lookups in: Adult content." in flat(text)
    assert "instagram.com" not in text and "10.0.7.21" not in html
    unsubscribe_url = re.search(r"Unsubscribe: (\S+)", text).group(1)
    assert mail["List-Unsubscribe"] == f"<{unsubscribe_url}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Content-Language"] == "en"  # ana left it to the browser: the school's language, never "None"
    assert f'href="{unsubscribe_url}"' in html
    [other] = inbox.to("gil@example.org")
    assert "Turma 8c (Caio)" in parts(other)[0]

    # Another pass sends nothing, and neither does a restart (new store and job objects).
    assert (await job.run_once(now=SEND + 120)).queued == 0
    assert await delivery.run_once(now=SEND + 180) == 0
    restarted = await open_store(StoreConfig(node="test-node"), tmp_path)
    try:
        again = await DigestJob(restarted, lambda: config).run_once(now=SEND + 3600)
        assert (again.queued, again.already) == (0, 2)
        assert await OutboxDelivery(restarted, config.node.mail).run_once(now=SEND + 3660) == 0
    finally:
        await restarted.close()
    assert len(inbox.mails) == 2

    # Unsubscribing through the mail's link: the page asks first, the button unsubscribes.
    path = unsubscribe_url.removeprefix(config.node.web.base_url)
    asking = await console.page(path)
    assert "Stop the weekly email?" in asking and "ana@example.org" in asking
    assert (await store.get_parent_profile("ana@example.org")).digest  # a GET changes nothing
    response = await console.client.post(path, data={"csrf_token": form_token(asking)})
    assert response.status == 200 and "You are unsubscribed" in await response.text()
    assert not (await store.get_parent_profile("ana@example.org")).digest

    # The next week's digest goes to the other parent only.
    run = await job.run_once(now=SEND + WEEK + 60)
    assert run.week.start.isoformat() == "2026-11-16" and run.queued == 1
    assert await delivery.run_once(now=SEND + WEEK + 61) == 1
    assert len(inbox.to("ana@example.org")) == 1 and len(inbox.to("gil@example.org")) == 2


async def test_the_unsubscribe_link_asks_first_in_the_parents_language(console: Console, tmp_path: Path):
    await add_parent(console, "gil@example.org", "8c", "Caio", "pt-BR")
    store = console.store
    path = unsubscribe_path(unsubscribe_token(await unsubscribe_secret(store), "gil@example.org"))
    # The link is an opaque id: it names nobody to whoever reads it, in any encoding.
    assert "gil" not in path and base64.urlsafe_b64encode(b"gil@example.org").decode()[:8] not in path
    asking = await console.page(path)
    assert '<html lang="pt-BR">' in asking and "Parar de receber o e-mail semanal?" in asking
    assert 'id="unsubscribe-form"' in asking
    response = await console.client.post(path, data={"csrf_token": form_token(asking)})
    done = await response.text()
    assert response.status == 200 and "Inscrição cancelada" in done and 'id="unsubscribe-form"' not in done
    assert not (await store.get_parent_profile("gil@example.org")).digest
    [entry] = await store.list_audit(AuditFilter(action="parent.unsubscribe"))
    assert (entry.actor, entry.target, entry.detail) == ("gil@example.org", "gil@example.org", {"via": "link"})
    # Visiting again says so; unsubscribing again changes and records nothing.
    assert "Inscrição cancelada" in await console.page(path)
    await console.client.post(path, data={"csrf_token": form_token(asking)})
    assert len(await store.list_audit(AuditFilter(action="parent.unsubscribe"))) == 1

    # Links that are not genuine, or no longer lead to a parent, do nothing.
    secret = await unsubscribe_secret(store)
    token = unsubscribe_token(secret, "gil@example.org")
    await console.add_user("tina@example.org", "teacher", ["7b"])
    await add_parent(console, "gone@example.org", "7b", "Eva")
    gone = unsubscribe_path(unsubscribe_token(secret, "gone@example.org"))
    await store.delete_user("gone@example.org")
    for dead in (
        unsubscribe_path(token[:-1] + ("A" if token[-1] != "A" else "B")),  # a changed signature
        unsubscribe_path(unsubscribe_token("another secret", "gil@example.org")),
        unsubscribe_path(unsubscribe_token(secret, "tina@example.org")),  # staff get no digest
        unsubscribe_path("not-base64!.x"),
        unsubscribe_path(base64.urlsafe_b64encode(b"gil@example.org").decode().rstrip("=") + "." + token),  # the old form
        gone,
    ):
        assert "This link does not work" in await console.page(dead, 404)
        assert (await console.client.post(dead, data={"List-Unsubscribe": "One-Click"})).status == 404


async def test_one_click_unsubscribe_needs_no_session_and_no_csrf_token(console: Console):
    await add_parent(console, "ana@example.org", "7b", "Bia")
    path = unsubscribe_path(unsubscribe_token(await unsubscribe_secret(console.store), "ana@example.org"))
    console.client.session.cookie_jar.clear()
    # What a mail provider sends (RFC 8058): a bare form POST, no cookie, no token.
    response = await console.client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status == 200
    assert not (await console.store.get_parent_profile("ana@example.org")).digest
    [entry] = await console.store.list_audit(AuditFilter(action="parent.unsubscribe"))
    assert entry.detail == {"via": "one-click"}
    # The exemption is that route's alone: other family forms still need the token.
    console.client.session.cookie_jar.clear()
    assert (await console.client.post("/family/login", data={"username": "ana@example.org"})).status == 403
    await console.logged_in("ana@example.org")
    assert (await console.client.post("/family/digest", data={"digest": "on"})).status == 403


async def test_parents_turn_the_weekly_email_off_and_on_on_their_page(console: Console, tmp_path: Path):
    await add_parent(console, "ana@example.org", "7b", "Bia")
    await console.logged_in("ana@example.org")
    assert 'id="digest-form"' not in await console.page("/family")  # no mail configured: not offered
    console.control.config = mail_config(tmp_path, console)
    home = await console.page("/family")
    assert "Email me the weekly report" in home and re.search(r'id="digest-on"[^>]* checked', home)

    response = await console.post("/family/digest", {}, form_token(home))  # the box unticked
    assert response.status == 303 and response.headers["Location"] == "/family?saved=digest"
    home = await console.page("/family?saved=digest")
    assert 'id="digest-notice"' in home and not re.search(r'id="digest-on"[^>]* checked', home)
    assert not (await console.store.get_parent_profile("ana@example.org")).digest
    await console.post("/family/digest", {"digest": "on"}, form_token(home))
    assert (await console.store.get_parent_profile("ana@example.org")).digest
    audit = await console.store.list_audit(AuditFilter(action="parent.digest"))
    assert [entry.detail for entry in audit] == [{"on": True}, {"on": False}]  # newest first

    # A parent made on the Users page gets a profile when they choose.
    console.client.session.cookie_jar.clear()
    token = await console.logged_in("pat")
    assert (await console.post("/family/digest", {}, token)).status == 303
    assert not (await console.store.get_parent_profile("pat")).digest
    # Staff have no such setting.
    console.client.session.cookie_jar.clear()
    token = await console.logged_in("tom")
    assert (await console.post("/family/digest", {"digest": "on"}, token)).status == 403


async def test_staff_preview_this_weeks_digest_and_send_themselves_a_test_copy(
    console: Console, smtp: tuple[Inbox, int], tmp_path: Path
):
    inbox, port = smtp
    config = console.control.config = mail_config(tmp_path, console, port)
    zone = ZoneInfo(config.policy.timezone)
    week = digest_week(next_send_moment(config.node.reports, zone, time.time())[0], zone)  # the week it covers
    devices = [f"10.0.7.{n}" for n in range(1, 5)]  # enough different devices for the figures to show
    await console.store.insert_events([
        support_event("www.games.example", verdict="blocked", category="games", client=d, t=week.since + 60) for d in devices
    ])
    await console.logged_in("vic")  # a viewer looks
    page = await console.page("/digest?group=7b")
    assert 'id="digest-subject">Online safety at school: week of' in page
    assert "== Class 7b ==" in page and "4 blocked lookups" in page and "* Online games: 4" in page
    assert 'id="digest-copy-form"' not in page  # but does not send
    page = await console.page("/digest?group=7b&language=pt-BR")
    assert "Turma 7b" in page
    assert "parent@example.org" not in page  # the preview's stand-in address is not shown as anyone's

    token = await console.logged_in("ada")
    assert 'id="digest-copy-form"' in await console.page("/digest?group=7b")
    refused = await console.post("/digest/send", {"group": "7b", "to": "not an address"}, token)
    assert refused.status == 422 and "is not a mail address" in await refused.text()
    assert (await console.post("/digest/send", {"group": "nope", "to": "ada@school.example"}, token)).status == 404
    response = await console.post("/digest/send", {"group": "7b", "language": "", "to": "ada@school.example"}, token)
    assert response.status == 303 and "sent=1" in response.headers["Location"]
    assert "A test copy is queued" in await console.page(response.headers["Location"])
    assert await OutboxDelivery(console.store, config.node.mail).run_once(now=time.time()) == 1
    [mail] = inbox.to("ada@school.example")
    assert mail["Subject"].startswith("[Test copy] Online safety at school: week of")
    assert mail["Content-Language"] == "en"
    text, html = parts(mail)
    assert "== Class 7b ==" in text and "Class 7b" in html
    [entry] = await console.store.list_audit(AuditFilter(action="digest.test"))
    assert (entry.actor, entry.target) == ("ada", "ada@school.example")

    await console.client.post("/logout", data={"csrf_token": token})
    token = await console.logged_in("tom")  # teachers neither look nor send
    assert (await console.client.get("/digest", allow_redirects=False)).status == 403
    assert (await console.post("/digest/send", {"group": "7b", "to": "x@school.example"}, token)).status == 403
