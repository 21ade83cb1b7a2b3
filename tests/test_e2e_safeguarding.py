"""Safeguarding alerts through the whole product: a real ``filterdns serve`` answers real DNS
queries, records them in its store, raises one alert for the burst, and delivers its mail to
a real SMTP server and its webhook to a local receiver; more attempts in the same burst send
nothing more. The jobs run on their own timers (alerts every 10 s, 5 s after the events), so
this test waits up to a minute."""

from __future__ import annotations

import asyncio
import time

import dns.message
import dns.query

from tests.support.fake_upstream import FakeUpstream
from tests.support.mail import Inbox, WebhookCall, smtp_server, webhook_receiver
from tests.support.server import FilterDnsProcess, base_config

PUPIL = "127.0.0.7"
LEAD = "dsl@school.test"


def school(upstream_port: int, smtp_port: int, hook: str) -> dict:
    return base_config(
        upstream_port,
        categories={"self-harm": {"description": "Self-harm", "domains": ["harm.test"]}},
        groups={"pupils": {"networks": ["127.0.0.0/8"], "block": ["self-harm"]}},
        alerts={"rules": {"self-harm": {
            "categories": ["self-harm"], "threshold": 3, "within": "10m", "email": [LEAD], "webhooks": [hook],
        }}},  # fmt: skip
        mail={"host": "127.0.0.1", "port": smtp_port, "security": "none", "from": "Filter <filter@school.test>"},
        web={"listen": None, "public_url": "https://filter.school.test"},
    )


def look_up(server: FilterDnsProcess, name: str) -> list[str]:
    query = dns.message.make_query(name, "A")
    response = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=3, source=PUPIL)
    return [rr.to_text() for rrset in response.answer for rr in rrset]


async def arrived(inbox: Inbox, calls: list[WebhookCall], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (inbox.mails and calls):
        assert time.monotonic() < deadline, "no alert mail and webhook within a minute"
        await asyncio.sleep(0.2)


async def test_a_burst_of_blocked_lookups_raises_one_alert_by_mail_and_webhook(tmp_path):
    inbox, calls = Inbox(), []
    async with smtp_server(inbox) as smtp_port, webhook_receiver(calls) as hook:
        with FakeUpstream() as upstream, FilterDnsProcess(school(upstream.port, smtp_port, hook), tmp_path) as server:
            for name in ("www.harm.test", "harm.test", "harm.test"):
                assert look_up(server, name) == ["0.0.0.0"]  # blocked
            await arrived(inbox, calls)
            for _ in range(3):  # the same burst goes on
                look_up(server, "harm.test")
            await asyncio.sleep(16)  # the evaluator's next pass (every 10 s, 5 s after the events)
    [mail] = inbox.to(LEAD)
    assert mail["Subject"].startswith("Safeguarding alert") and "self-harm" in mail["Subject"]
    assert PUPIL in mail.get_body(("plain",)).get_content()
    [call] = calls
    assert call.body["rule"] == "self-harm" and call.body["client"] == PUPIL and call.body["group"] == "pupils"
    assert call.body["attempts"] >= 3 and call.body["url"].startswith("https://filter.school.test/alerts/")
