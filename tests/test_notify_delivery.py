"""Outbox delivery against real servers on 127.0.0.1: an aiosmtpd SMTP server (plain,
STARTTLS and implicit TLS with a certificate made here, with and without a login) and an
aiohttp webhook receiver. Time is driven by hand through ``now``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from filterdns.config.model import MailConfig
from filterdns.notify import DeliveryError
from filterdns.notify.delivery import OutboxDelivery
from filterdns.notify.smtp import build_mail
from filterdns.store import Store, StoreConfig, StoreError, open_store
from tests.support import LOOPBACK
from tests.support.mail import Inbox, WebhookCall, parse, smtp_server, webhook_receiver

T0 = 1_700_000_000.0
SENDER = "Riverside Filter <filter@school.test>"
LEAD = "lead@school.test"
USER, SECRET = "filter", "s3cret-relay"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(StoreConfig(node="node-a"), tmp_path)
    yield store
    await store.close()


def mail_config(port: int, **changes: Any) -> MailConfig:
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "none", "sender": SENDER, "timeout": 5.0,
                                    "max_attempts": 3, "retry_initial": 60.0, "retry_max": 600.0}  # fmt: skip
    settings.update(changes)
    return MailConfig(**settings)


async def enqueue_mail(store: Store, key: str = "test:1", **changes: Any) -> None:
    fields: dict[str, Any] = {
        "channel": "email", "kind": "alert", "recipient": LEAD, "subject": "Safeguarding alert: self-harm",
        "body_text": "Plain text body.\n", "body_html": "<p>HTML <b>body</b></p>",
        "headers": {"List-Unsubscribe": "<https://filter.school.test/u/1>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    }  # fmt: skip
    fields.update(changes)
    assert await store.enqueue_message(dedup_key=key, now=T0, **fields)


# --- a port nobody listens on ----------------------------------------------------------


@contextlib.contextmanager
def closed_port() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 nobody listens on (bound, so nobody else takes it meanwhile)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


# --- mail ----------------------------------------------------------------------------------


async def test_a_mail_goes_out_once_with_both_parts_and_its_headers(store: Store) -> None:
    inbox = Inbox()
    async with smtp_server(inbox) as port:
        await enqueue_mail(store)
        delivery = OutboxDelivery(store, mail_config(port))
        assert await delivery.run_once(now=T0 + 1) == 1
        assert await delivery.run_once(now=T0 + 10_000) == 0
        assert await OutboxDelivery(store, mail_config(port)).run_once(now=T0 + 10_000) == 0  # after a restart
    [envelope] = inbox.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("filter@school.test", [LEAD])
    mail = parse(envelope)
    assert mail["From"] == SENDER and mail["To"] == LEAD
    assert mail["Subject"] == "Safeguarding alert: self-harm"
    assert mail["Date"].datetime == datetime.datetime.fromtimestamp(T0 + 1, datetime.UTC)
    assert mail["Message-ID"].endswith("@school.test>")
    assert mail["List-Unsubscribe"] == "<https://filter.school.test/u/1>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Plain text body.\n"
    assert mail.get_body(("html",)).get_content().strip() == "<p>HTML <b>body</b></p>"
    [message] = await store.list_messages()
    assert (message.status, message.attempts, message.sent_at) == ("sent", 1, T0 + 1)


async def test_a_text_only_mail_has_one_part(store: Store) -> None:
    inbox = Inbox()
    async with smtp_server(inbox) as port:
        await enqueue_mail(store, body_html="", headers={})
        assert await OutboxDelivery(store, mail_config(port)).run_once(now=T0 + 1) == 1
    mail = parse(inbox.envelopes[0])
    assert mail.get_content_type() == "text/plain" and "List-Unsubscribe" not in mail


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for 127.0.0.1 made now: the server's context and a client context
    that trusts exactly that certificate."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


# aiosmtpd cannot tell that a connection made with implicit TLS is encrypted, so that
# server must allow AUTH "without TLS", and warns about it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_encrypted_and_logged_in(store: Store, tmp_path: Path, security: str) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    inbox = Inbox()
    async with smtp_server(inbox, tls=server_tls, implicit_tls=security == "tls", login=(USER, SECRET)) as port:
        await enqueue_mail(store)
        good = OutboxDelivery(store, mail_config(port, security=security, username=USER, password=SECRET),
                              tls_context=client_tls)  # fmt: skip
        assert await good.run_once(now=T0 + 1) == 1
        await enqueue_mail(store, "test:2")
        wrong = OutboxDelivery(store, mail_config(port, security=security, username=USER, password="nope"),
                               tls_context=client_tls)  # fmt: skip
        assert await wrong.run_once(now=T0 + 2) == 0
        untrusting = OutboxDelivery(store, mail_config(port, security=security, username=USER, password=SECRET))
        assert await untrusting.run_once(now=T0 + 2 + 60) == 0  # the system CAs do not know this certificate
    assert len(inbox.envelopes) == 1
    failed = (await store.list_messages())[0]
    assert (failed.status, failed.attempts) == ("pending", 2)
    assert "certificate is not trusted (self-signed certificate)" in failed.last_error


async def test_wrong_password_is_retried_and_explained(store: Store, tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    async with smtp_server(Inbox(), tls=server_tls, login=(USER, SECRET)) as port:
        await enqueue_mail(store)
        config = mail_config(port, security="starttls", username=USER, password="nope")
        assert await OutboxDelivery(store, config, tls_context=client_tls).run_once(now=T0 + 1) == 0
    [message] = await store.list_messages()
    assert message.status == "pending" and message.last_error.startswith("authentication failed")


async def test_smtp_down_then_up_retries_with_backoff_and_never_resends(store: Store) -> None:
    inbox = Inbox()
    with closed_port() as sock:
        port = sock.getsockname()[1]
        await enqueue_mail(store)
        delivery = OutboxDelivery(store, mail_config(port))
        assert await delivery.run_once(now=T0 + 1) == 0
        [message] = await store.list_messages()
        assert (message.status, message.attempts, message.next_attempt) == ("pending", 1, T0 + 61)
        assert message.last_error == f"cannot connect to 127.0.0.1:{port}: connection refused"
    async with smtp_server(inbox, port=port):
        assert await delivery.run_once(now=T0 + 60) == 0  # not due yet
        assert inbox.envelopes == []
        assert await delivery.run_once(now=T0 + 61) == 1
        restarted = OutboxDelivery(store, mail_config(port))
        assert await restarted.run_once(now=T0 + 10_000) == 0
    assert len(inbox.envelopes) == 1
    [message] = await store.list_messages()
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, "")


async def test_a_mail_server_outage_is_logged_once_and_its_end_once(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="filterdns.outbox")
    inbox = Inbox()
    with closed_port() as sock:
        port = sock.getsockname()[1]
        for n in range(3):
            await enqueue_mail(store, key=f"test:{n}")
        delivery = OutboxDelivery(store, mail_config(port))
        assert await delivery.run_once(now=T0 + 1) == 0
        assert await delivery.run_once(now=T0 + 61) == 0  # all three retried, still down
    async with smtp_server(inbox, port=port):
        assert await delivery.run_once(now=T0 + 10_000) == 3
    assert len(inbox.envelopes) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"the mail server 127.0.0.1:{port} is not accepting messages: cannot connect to 127.0.0.1:{port}: "
        "connection refused; they wait in the outbox and are retried"
    ]
    assert [r.getMessage() for r in caplog.records if "again" in r.getMessage()] == [
        f"the mail server 127.0.0.1:{port} accepts messages again"
    ]


async def test_after_max_attempts_the_message_fails(store: Store) -> None:
    with closed_port() as sock:
        await enqueue_mail(store)
        delivery = OutboxDelivery(store, mail_config(sock.getsockname()[1]))
        for now in (T0, T0 + 60, T0 + 180):  # waits of 60 s then 120 s
            assert await delivery.run_once(now=now) == 0
    [message] = await store.list_messages()
    assert (message.status, message.attempts) == ("failed", 3)
    assert "connection refused" in message.last_error


async def test_a_refused_recipient_fails_at_once(store: Store) -> None:
    inbox = Inbox(refuse={"gone@school.test"})
    async with smtp_server(inbox) as port:
        await enqueue_mail(store, recipient="gone@school.test")
        assert await OutboxDelivery(store, mail_config(port)).run_once(now=T0 + 1) == 0
    [message] = await store.list_messages()
    assert (message.status, message.attempts) == ("failed", 1)
    assert message.last_error == "the server refused the recipient gone@school.test (550 5.1.1 no such mailbox)"


def test_a_header_with_a_line_break_cannot_be_sent(store: Store) -> None:
    from filterdns.store import OutboxMessage

    message = OutboxMessage(1, "k", "email", "test", LEAD, "Injected\nBcc: x@evil.test", "b", "", {}, T0,
                            "sending", 1, T0, None, "")  # fmt: skip
    with pytest.raises(DeliveryError) as error:
        build_mail(message, SENDER)
    assert error.value.permanent


async def test_without_mail_settings_mail_waits_and_webhooks_go(store: Store) -> None:
    hooks: list[WebhookCall] = []
    async with webhook_receiver(hooks) as url:
        await enqueue_mail(store)
        await store.enqueue_message(dedup_key="alert:1:webhook", channel="webhook", kind="alert",
                                    recipient=url, subject="", body_text='{"rule": "self-harm"}', now=T0)  # fmt: skip
        delivery = OutboxDelivery(store, MailConfig(), fetch_allow=LOOPBACK)
        assert await delivery.run_once(now=T0 + 1) == 1
    mail, hook = sorted(await store.list_messages(), key=lambda m: m.channel)
    assert (mail.status, mail.attempts, mail.last_error) == ("pending", 0, "")
    assert hook.status == "sent" and [call.body for call in hooks] == [{"rule": "self-harm"}]


# --- webhooks ------------------------------------------------------------------------------


async def test_a_webhook_gets_the_json_and_a_failure_is_retried(store: Store) -> None:
    hooks: list[WebhookCall] = []
    async with webhook_receiver(hooks, answers=[503]) as url:
        await store.enqueue_message(
            dedup_key="alert:7:webhook", channel="webhook", kind="alert", recipient=url, subject="",
            body_text=json.dumps({"alert": 7}), headers={"X-Filterdns-Event": "alert"}, now=T0,
        )  # fmt: skip
        delivery = OutboxDelivery(store, MailConfig(), fetch_allow=LOOPBACK)
        assert await delivery.run_once(now=T0) == 0
        [message] = await store.list_messages()
        assert (message.status, message.last_error) == ("pending", "the webhook answered HTTP 503 Service Unavailable")
        assert await delivery.run_once(now=message.next_attempt) == 1
        assert await delivery.run_once(now=T0 + 10_000) == 0
    assert [call.body for call in hooks] == [{"alert": 7}, {"alert": 7}]
    assert hooks[-1].headers["Content-Type"] == "application/json"
    assert hooks[-1].headers["X-Filterdns-Event"] == "alert"
    assert (await store.list_messages())[0].status == "sent"


async def test_an_unreachable_webhook_is_explained(store: Store) -> None:
    with closed_port() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        await store.enqueue_message(dedup_key="w", channel="webhook", kind="alert", recipient=url, subject="",
                                    body_text="{}", now=T0)  # fmt: skip
        assert await OutboxDelivery(store, MailConfig(), fetch_allow=LOOPBACK).run_once(now=T0) == 0
    [message] = await store.list_messages()
    assert message.status == "pending" and message.last_error.endswith("connection refused")


# --- the job -------------------------------------------------------------------------------


async def test_only_the_lease_holder_delivers(store: Store, tmp_path: Path) -> None:
    other = await open_store(StoreConfig(node="node-b"), tmp_path)
    try:
        hooks: list[WebhookCall] = []
        async with webhook_receiver(hooks) as url:
            await store.enqueue_message(dedup_key="w", channel="webhook", kind="alert", recipient=url,
                                        subject="", body_text="{}", now=T0)  # fmt: skip
            a, b = OutboxDelivery(store, MailConfig(), fetch_allow=LOOPBACK), OutboxDelivery(other, MailConfig(), fetch_allow=LOOPBACK)
            assert await b.run_once(now=T0) == 1  # b holds the lease now
            await store.enqueue_message(dedup_key="w2", channel="webhook", kind="alert", recipient=url,
                                        subject="", body_text="{}", now=T0)  # fmt: skip
            assert await a.run_once(now=T0 + 1) == 0
            assert await a.run_once(now=T0 + 100) == 1  # b stopped renewing: a took over
        assert len(hooks) == 2
    finally:
        await other.close()


async def test_run_forever_survives_store_errors_wakes_on_demand_and_releases_its_lease(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_acquire = store.acquire_lease
    calls = 0

    async def flaky_acquire(name: str, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise StoreError("sqlite: database is locked")
        return await real_acquire(name, **kwargs)

    monkeypatch.setattr(store, "acquire_lease", flaky_acquire)
    hooks: list[WebhookCall] = []
    async with webhook_receiver(hooks) as url:
        delivery = OutboxDelivery(store, MailConfig(), poll_interval=30.0, fetch_allow=LOOPBACK)
        task = asyncio.create_task(delivery.run_forever())
        try:
            await store.enqueue_message(dedup_key="w", channel="webhook", kind="test", recipient=url,
                                        subject="", body_text='{"n": 1}')  # fmt: skip
            for _ in range(3):  # two failing passes, then one that delivers
                delivery.wake()
                await asyncio.sleep(0.05)
            async with asyncio.timeout(5):
                while not hooks:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [call.body for call in hooks] == [{"n": 1}]
    assert calls >= 3
    other = await open_store(StoreConfig(node="node-b"), tmp_path)
    try:
        assert await other.acquire_lease("outbox", ttl=60)  # released when the job stopped
    finally:
        await other.close()
