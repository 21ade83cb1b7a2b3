"""The notifications of a new safeguarding alert: one mail per address of the rule's
``email`` list and one webhook call per URL of its ``webhooks`` list, queued in the outbox.

The mail is for staff (the designated safeguarding lead), in English: the rule, the
categories, the group, the device's address and MAC when known, the first and last attempt
in the school's time zone, the number of attempts, and a link to the alert in the console.
It names no looked-up domain: those stay in the console, behind a login.

The webhook body is JSON, version 1 of this documented payload::

    {"type": "filterdns.alert", "version": 1,
     "id": 12,                       # the alert's number; the console shows it at /alerts/12
     "rule": "self-harm",            # the rule's name in the policy
     "group": "7b",                  # the group the device is in (or the alert's group)
     "client": "10.0.7.21",          # the device's address; "" when several devices took part
     "mac": "aa:bb:cc:dd:ee:ff",     # "" when unknown
     "categories": ["self-harm"],    # what the attempts were blocked as ("bypass": canary names too)
     "attempts": 5,                  # attempts in the burst when the alert was raised
     "first_seen": "2026-03-02T09:15:03Z",   # ISO 8601, UTC
     "last_seen": "2026-03-02T09:18:40Z",
     "url": "https://filter.school.example/alerts/12"}

Fields are only ever added within version 1; a change of meaning gets a new version.
Each message's dedup key (``alert:{id}:{channel}:{recipient}``) makes queueing idempotent,
so queueing again after a crash or restart sends nothing twice.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from filterdns.alerts.rules import SUBJECT_WORDS
from filterdns.config.model import AlertRule, Config
from filterdns.store import Alert, Store

PAYLOAD_TYPE = "filterdns.alert"
# RFC 3834: no out-of-office replies to an automatic alert.
MAIL_HEADERS = {"Auto-Submitted": "auto-generated"}
PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class AlertMail:
    subject: str
    text: str
    html: str


def alert_url(alert: Alert, config: Config) -> str:
    return f"{config.node.web.base_url}/alerts/{alert.id}"


def utc_iso(timestamp: float) -> str:
    """``2026-03-02T09:15:03Z``: whole seconds, UTC."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(timestamp: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    if rest or not minutes:
        return f"{int(seconds)} seconds"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def device_words(alert: Alert) -> str:
    """Who made the attempts, as staff read it: "10.0.7.21 (MAC ...)" or "several devices"."""
    if not alert.client:
        return "several devices"
    return f"{alert.client} (MAC {alert.mac})" if alert.mac else alert.client


def _facts(alert: Alert, rule: AlertRule, config: Config) -> list[tuple[str, str]]:
    zone = ZoneInfo(config.policy.timezone)
    per = f"one {SUBJECT_WORDS[rule.per]}"
    return [
        ("Rule", f"{rule.name}: {rule.threshold} or more attempts within {_duration(rule.window)} by {per}"),
        ("Categories", ", ".join(alert.categories)),
        ("Group", alert.group),
        ("Device", device_words(alert)),
        ("First attempt", _local(alert.first_time, zone)),
        ("Last attempt", _local(alert.last_time, zone)),
        ("Attempts", str(alert.attempts)),
    ]


def alert_mail(alert: Alert, rule: AlertRule, config: Config) -> AlertMail:
    """The mail to a rule's addresses: plain text and a simple HTML version of the same."""
    # The subject names no device: it is shown wherever mail is listed (the console's
    # outbox, mail clients' previews), the body only to the rule's recipients. A rule name
    # is a YAML key and may hold anything, line breaks included: not in a header.
    subject = " ".join(f"Safeguarding alert {alert.id}: {rule.name}".split())
    url = alert_url(alert, config)
    facts = _facts(alert, rule, config)
    intro = "Blocked attempts matching a safeguarding alert rule were seen on the school network."
    outro = "Open the alert to see the blocked lookups, and acknowledge it with a note once it is dealt with:"
    footer = f'You receive this because you are a recipient of the alert rule "{rule.name}" in filterdns.'
    width = max(len(label) for label, _ in facts) + 2
    text = "\n".join(
        [intro, "", *(f"{label + ':':<{width}}{value}" for label, value in facts), "", outro, url, "", footer]
    )
    rows = "".join(
        f"<tr><th align=\"left\">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in facts
    )
    body = (
        f"<!doctype html><html><body><p>{html.escape(intro)}</p><table>{rows}</table>"
        f"<p>{html.escape(outro)}<br><a href=\"{html.escape(url)}\">{html.escape(url)}</a></p>"
        f"<p><small>{html.escape(footer)}</small></p></body></html>"
    )
    return AlertMail(subject, text + "\n", body)


def webhook_payload(alert: Alert, config: Config) -> dict[str, object]:
    """The webhook body (see the module docstring: version 1)."""
    return {
        "type": PAYLOAD_TYPE,
        "version": PAYLOAD_VERSION,
        "id": alert.id,
        "rule": alert.rule,
        "group": alert.group,
        "client": alert.client,
        "mac": alert.mac,
        "categories": list(alert.categories),
        "attempts": alert.attempts,
        "first_seen": utc_iso(alert.first_time),
        "last_seen": utc_iso(alert.last_time),
        "url": alert_url(alert, config),
    }


def dedup_key(alert: Alert, channel: str, recipient: str) -> str:
    return f"alert:{alert.id}:{channel}:{recipient}"


async def enqueue_notices(
    store: Store, alert: Alert, rule: AlertRule, config: Config, *, now: float | None = None
) -> int:
    """Queue the alert's mails and webhook calls; returns how many were new (0 when they
    had all been queued before)."""
    queued = 0
    if rule.email:
        mail = alert_mail(alert, rule, config)
        queued += await _enqueue_all(
            store, alert, "email", rule.email, mail.subject, mail.text, mail.html, MAIL_HEADERS, now
        )
    if rule.webhooks:
        body = json.dumps(webhook_payload(alert, config), separators=(",", ":"))
        subject = f"alert {alert.id}: {alert.rule}"
        queued += await _enqueue_all(store, alert, "webhook", rule.webhooks, subject, body, "", {}, now)
    return queued


async def _enqueue_all(
    store: Store, alert: Alert, channel: str, recipients: Sequence[str],
    subject: str, text: str, body_html: str, headers: Mapping[str, str], now: float | None,
) -> int:  # fmt: skip
    queued = 0
    for recipient in recipients:
        queued += await store.enqueue_message(
            dedup_key=dedup_key(alert, channel, recipient), channel=channel, kind="alert", recipient=recipient,
            subject=subject, body_text=text, body_html=body_html, headers=headers, now=now,
        )  # fmt: skip
    return queued
