"""Real receivers on 127.0.0.1 for what filterdns sends out: an SMTP server (aiosmtpd) and a
webhook endpoint (aiohttp), each run in the test's own event loop on an ephemeral port.

    inbox = Inbox()
    async with smtp_server(inbox) as port:      # MailConfig(host="127.0.0.1", port=port, ...)
        ...
    [mail] = inbox.to("lead@school.test")

    calls: list[WebhookCall] = []
    async with webhook_receiver(calls) as url:  # a webhook address for a rule or the outbox
        ...
    assert calls[0].body == {...}
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword


@dataclass
class Inbox:
    """An aiosmtpd handler keeping every mail it accepts, and refusing (550) the recipients
    in ``refuse``: a test of a bounced address needs a server that says no."""

    refuse: set[str] = field(default_factory=set)
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Envelope, address: str, options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    @property
    def mails(self) -> list[EmailMessage]:
        """The accepted mails, parsed, in the order they arrived."""
        return [parse(envelope) for envelope in self.envelopes]

    def to(self, recipient: str) -> list[EmailMessage]:
        """The accepted mails whose To header is ``recipient``."""
        return [mail for mail in self.mails if mail["To"] == recipient]


def parse(envelope: Envelope) -> EmailMessage:
    """An accepted mail as the recipient's mail program would read it."""
    assert envelope.original_content is not None
    return cast(EmailMessage, message_from_bytes(envelope.original_content, policy=policy.default))


@asynccontextmanager
async def smtp_server(
    inbox: Inbox, *, port: int = 0, tls: ssl.SSLContext | None = None, implicit_tls: bool = False,
    login: tuple[str, str] | None = None,
) -> AsyncIterator[int]:  # fmt: skip
    """An SMTP server delivering to ``inbox``; yields its port (``port`` 0: a free one).

    With ``tls`` it offers STARTTLS and requires it, or with ``implicit_tls`` speaks TLS from
    the start. With ``login`` (user name, password) it requires AUTH and accepts only those.
    """

    accepted = tuple(part.encode() for part in login) if login else None

    def check_login(server: SMTP, session: Any, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == accepted
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535 itself

    def protocol() -> SMTP:
        return SMTP(inbox, hostname="smtp.test", tls_context=None if implicit_tls else tls,
                    require_starttls=tls is not None and not implicit_tls,
                    authenticator=check_login if login else None, auth_required=login is not None,
                    auth_require_tls=not implicit_tls)  # fmt: skip

    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", port, ssl=tls if implicit_tls else None)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class WebhookCall:
    """One POST the receiver got: its JSON body, its media type (without parameters such
    as charset) and all its headers."""

    body: Any
    content_type: str
    headers: dict[str, str]


@asynccontextmanager
async def webhook_receiver(calls: list[WebhookCall], answers: Sequence[int] = ()) -> AsyncIterator[str]:
    """An HTTP endpoint appending every POST to ``calls``; yields its URL. It answers with
    the statuses in ``answers`` first, one a call (to test retries), then 204 No Content."""
    pending = list(answers)

    async def receive(request: web.Request) -> web.Response:
        calls.append(WebhookCall(await request.json(), request.content_type, dict(request.headers)))
        return web.Response(status=pending.pop(0) if pending else 204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()
