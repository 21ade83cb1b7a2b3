"""The "Outgoing mail" console page: who may see and change it, a failed message with its
error and the Retry button, the test mail form, and what it says without mail settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterdns.config.model import MailConfig
from filterdns.store import AuditFilter
from tests.support.web import HOSTILE_NAME, Console, make_console

RETRY = MailConfig(max_attempts=3, retry_initial=60.0, retry_max=600.0)


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        yield console


def with_mail(console: Console) -> None:
    mail = MailConfig(host="smtp.school.test", port=587, security="starttls", username="filter",
                      password="never-shown", sender="Filter <filter@school.test>")  # fmt: skip
    console.control.config = console.control.config.with_node(mail=mail)


async def page(console: Console, path: str = "/outbox", status: int = 200) -> str:
    response = await console.client.get(path, allow_redirects=False)
    text = await response.text()
    assert response.status == status, (path, response.status, text[-800:])
    return text


async def failed_message(console: Console, error: str = "cannot connect to smtp.school.test:587: connection refused") -> int:
    store = console.store
    assert await store.enqueue_message(dedup_key="digest:2026-W48:pat", channel="email", kind="digest",
                                       recipient="lead@school.test", subject="Weekly report", body_text="x")  # fmt: skip
    [message] = await store.claim_messages(5)
    await store.mark_failed(message, error, permanent=True, retry=RETRY)
    return message.id


async def status_of(console: Console, ident: int) -> str:
    message = await console.store.get_message(ident)
    assert message is not None
    return message.status


async def test_only_admins_and_viewers_see_the_page(console: Console) -> None:
    await console.logged_in("tom")
    await page(console, status=403)
    assert 'href="/outbox"' not in await page(console, "/")
    await console.logged_in("vic")
    assert 'href="/outbox"' in await page(console, "/")
    await page(console)


async def test_a_failed_message_shows_its_error_and_an_admin_retries_it(console: Console) -> None:
    with_mail(console)
    ident = await failed_message(console)
    token = await console.logged_in("ada")
    text = await page(console)
    assert f'id="message-{ident}"' in text and "lead@school.test" in text
    assert "cannot connect to smtp.school.test:587: connection refused" in text
    assert f'id="retry-{ident}"' in text
    assert "smtp.school.test:587" in text and "never-shown" not in text
    assert 'id="count-failed" href="?status=failed"><span class="figure">1</span>' in text

    response = await console.post(f"/outbox/{ident}/retry", {}, token)
    assert response.status == 303 and response.headers["Location"] == "/outbox?done=retried"
    message = await console.store.get_message(ident)
    assert message is not None and (message.status, message.attempts) == ("pending", 0)
    assert f'id="retry-{ident}"' not in await page(console)
    [entry] = await console.store.list_audit(AuditFilter(action="outbox.retry"))
    assert (entry.actor, entry.target, entry.detail["recipient"]) == ("ada", str(ident), "lead@school.test")

    again = await console.post(f"/outbox/{ident}/retry", {}, token)  # not failed any more
    assert again.status == 404


async def test_viewers_read_but_cannot_retry(console: Console) -> None:
    ident = await failed_message(console)
    token = await console.logged_in("vic")
    text = await page(console)
    assert "connection refused" in text and f'id="retry-{ident}"' not in text and "test-mail-form" not in text
    assert (await console.post(f"/outbox/{ident}/retry", {}, token)).status == 403
    assert (await console.post("/outbox/test", {"to": "vic@school.test"}, token)).status == 403
    assert await status_of(console, ident) == "failed"


async def test_retry_needs_the_csrf_token(console: Console) -> None:
    ident = await failed_message(console)
    await console.logged_in("ada")
    response = await console.client.post(f"/outbox/{ident}/retry", allow_redirects=False)
    assert response.status == 403
    assert await status_of(console, ident) == "failed"


async def test_filter_by_status(console: Console) -> None:
    await failed_message(console)
    await console.store.enqueue_message(dedup_key="test:x", channel="email", kind="test",
                                        recipient="other@school.test", subject="Hi", body_text="x")  # fmt: skip
    await console.logged_in("ada")
    failed = await page(console, "/outbox?status=failed")
    assert "lead@school.test" in failed and "other@school.test" not in failed
    pending = await page(console, "/outbox?status=pending")
    assert "other@school.test" in pending and "lead@school.test" not in pending
    await page(console, "/outbox?status=lost", 400)


async def test_a_test_mail_is_queued_and_audited(console: Console) -> None:
    with_mail(console)
    token = await console.logged_in("ada")
    response = await console.post("/outbox/test", {"to": "ada@school.test"}, token)
    assert response.status == 303 and response.headers["Location"] == "/outbox?done=test"
    [message] = await console.store.list_messages()
    assert (message.kind, message.channel, message.recipient, message.status) == ("test", "email", "ada@school.test", "pending")
    assert message.dedup_key.startswith("test:") and "sent by ada" in message.body_text
    assert "Test mail queued" in await page(console, "/outbox?done=test")
    [entry] = await console.store.list_audit(AuditFilter(action="outbox.test"))
    assert (entry.actor, entry.target) == ("ada", "ada@school.test")


async def test_a_bad_test_address_is_refused_and_escaped(console: Console) -> None:
    token = await console.logged_in("ada")
    response = await console.post("/outbox/test", {"to": HOSTILE_NAME}, token)
    text = await response.text()
    assert response.status == 422 and "is not a mail address" in text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    assert await console.store.list_messages() == []


async def test_without_mail_settings_the_page_says_so(console: Console) -> None:
    await console.store.enqueue_message(dedup_key="digest:2026-03-02:ana@example.org", channel="email",
                                        kind="digest", recipient="ana@example.org", subject="Weekly", body_text="x")  # fmt: skip
    await console.logged_in("vic")
    text = await page(console)
    assert 'id="mail-not-configured"' in text and "<code>mail:</code>" in text
    assert "(waits for mail settings)" in text
    with_mail(console)
    text = await page(console)
    assert 'id="mail-not-configured"' not in text and "(waits for mail settings)" not in text
