"""Sending one outbox message as mail through the configured SMTP relay.

Every failure becomes a ``DeliveryError`` whose reason an administrator can act on in the
console ("cannot connect to smtp.school.org:587: connection refused", "authentication
failed"), not a traceback. Only what is specific to this one message is permanent (the
server refuses the recipient or the content with a 5xx code); a wrong password or an
unreachable relay is the same for every message and is fixed in the config, so those
messages keep retrying with backoff meanwhile.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from filterdns.config.model import MailConfig
from filterdns.notify import DeliveryError
from filterdns.store import OutboxMessage


def message_id(message: OutboxMessage, sender: str) -> str:
    """The same Message-ID for every attempt at one outbox message, so that in the rare
    case it goes out twice (a node died between sending and recording it) mail clients
    can tell it is one message."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "filterdns.invalid"
    digest = hashlib.sha256(f"{message.dedup_key}\0{message.created!r}".encode()).hexdigest()[:24]
    return f"<{digest}.{message.id}@{domain}>"


def build_mail(message: OutboxMessage, sender: str, *, now: float | None = None) -> EmailMessage:
    """The mail for ``message``: a plain-text part and, if the message has one, an HTML
    alternative, with its extra headers (``List-Unsubscribe``, ...) on top of the usual
    ones. ``DeliveryError`` (permanent) if a header is unusable, e.g. holds a line break.
    The extra headers go on last: setting the body drops every ``Content-*`` header
    (``Content-Language`` among them) that was there before."""
    mail = EmailMessage()
    when = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    mail.set_content(message.body_text)
    if message.body_html:
        mail.add_alternative(message.body_html, subtype="html")
    try:
        mail["From"] = sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(when)
        mail["Message-ID"] = message_id(message, sender)
        for name, value in message.headers.items():
            del mail[name]
            mail[name] = value
    except (ValueError, TypeError) as exc:
        raise DeliveryError(f"cannot build the mail: {exc}", permanent=True) from exc
    return mail


async def send_mail(
    message: OutboxMessage, config: MailConfig, *, tls_context: ssl.SSLContext | None = None,
    now: float | None = None,
) -> None:
    """Deliver ``message`` to its recipient through ``config``'s relay. ``tls_context``
    replaces the system's trusted certificates (tests, or a relay with a private CA)."""
    mail = build_mail(message, config.sender, now=now)
    try:
        await aiosmtplib.send(
            mail,
            sender=parseaddr(config.sender)[1] or None,
            recipients=[message.recipient],
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password or None,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            timeout=config.timeout,
            tls_context=tls_context,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _delivery_error(exc, config) from exc


# What each kind of failure means, in words: the first kind ``exc`` is an instance of wins,
# so subclasses stand before their bases. The fields are ``exc``, ``where`` (host:port),
# ``timeout`` (mail.timeout) and ``cause`` (what the socket said under a failed connect).
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (aiosmtplib.SMTPAuthenticationError,
     "authentication failed at {where} ({exc.code} {exc.message}): check mail.username and mail.password"),
    (aiosmtplib.SMTPSenderRefused,
     "the server refused the sender {exc.sender} ({exc.code} {exc.message}): check mail.from"),
    (aiosmtplib.SMTPConnectTimeoutError, "cannot connect to {where}: no answer within {timeout:g} s"),
    (aiosmtplib.SMTPConnectError, "cannot connect to {where}: {cause}"),
    (aiosmtplib.SMTPTimeoutError, "{where} stopped answering (timeout {timeout:g} s)"),
    (aiosmtplib.SMTPNotSupported, "{where}: {exc.message} (check mail.security)"),
    (aiosmtplib.SMTPResponseException, "{where} answered {exc.code} {exc.message}"),
    (aiosmtplib.SMTPException, "{where}: {exc.message}"),
    (BaseException, "{where}: {exc}"),
)  # fmt: skip


def _delivery_error(exc: BaseException, config: MailConfig) -> DeliveryError:
    """What went wrong, in a few words, and whether retrying could help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _refused(f"the server refused the recipient {exc.recipient}", exc)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _refused("the server refused the message", exc)
    where = f"{config.host}:{config.port}"
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"TLS with {where} failed: {_tls_words(exc)} (check mail.security and mail.port)")
    words = next(words for kind, words in _REASONS if isinstance(exc, kind))
    return DeliveryError(words.format(exc=exc, where=where, timeout=config.timeout, cause=_cause(exc)))


def _refused(what: str, exc: aiosmtplib.SMTPResponseException) -> DeliveryError:
    """5xx is the server's final word on this message; 4xx means "try again later"."""
    return DeliveryError(f"{what} ({exc.code} {exc.message})", permanent=500 <= exc.code < 600)


def _cause(exc: BaseException) -> str:
    """The underlying socket error in words, e.g. "connection refused"."""
    cause = exc.__cause__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return "host name not found"
    if isinstance(cause, ssl.SSLError):
        return f"TLS failed: {_tls_words(cause)}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause or exc)


def _tls_words(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted ({error.verify_message})"
    return str(error.reason or error)
