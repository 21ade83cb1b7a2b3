"""Safeguarding alerts from synthetic query events in a real store (both backends), with a
fake clock: one alert per burst, per-group rules and the groups filter, bypass attempts as a
source, restarts and late events, and the whole way out: the alert's mail reaches a real
SMTP server (aiosmtpd) and its webhook a local HTTP receiver, through the outbox delivery."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from filterdns.alerts.evaluator import AlertEvaluator, chain_length, first_crossing
from filterdns.alerts.notices import alert_mail, webhook_payload
from filterdns.config.model import AlertRule, Config, MailConfig, NodeConfig, PolicyConfig, WebConfig
from filterdns.notify.delivery import OutboxDelivery
from filterdns.store import Alert, AuditFilter, Store, StoreError
from tests.support import LOOPBACK, stores
from tests.support.alerts import MAC, attempt, canary
from tests.support.mail import Inbox, WebhookCall, parse, smtp_server, webhook_receiver
from tests.support.stores import StoreFactory

pg_server, store_factory, store = stores.pg_server, stores.store_factory, stores.store

T0 = 1_700_000_000.0  # Tuesday 2023-11-14 22:13:20 UTC
DSL = "dsl@school.test"
HOOK = "http://127.0.0.1:9/alerts"
SELF_HARM = AlertRule("self-harm", categories=("self-harm",), threshold=5, window=600, email=(DSL,), webhooks=(HOOK,))


def config(*rules: AlertRule) -> Config:
    return Config(
        NodeConfig(web=WebConfig(public_url="https://filter.school.test/")),
        PolicyConfig(alert_rules=rules, timezone="Europe/London"),
    )


def evaluator(store: Store, *rules: AlertRule) -> AlertEvaluator:
    current = config(*(rules or (SELF_HARM,)))
    return AlertEvaluator(store, lambda: current, settle=5.0)


async def only_alert(store: Store) -> Alert:
    [alert] = await store.list_alerts()
    return alert


# --- bursts ---------------------------------------------------------------------------------


def test_crossings_and_chains() -> None:
    assert first_crossing([0, 1, 2, 3], 5, 600) is None
    assert first_crossing([0, 700, 701, 702, 703, 704], 5, 600) == 1
    assert first_crossing([0, 1, 2, 3, 600], 5, 600) == 0  # within: first to last at most a window
    assert first_crossing([0, 1, 2, 3, 601], 5, 600) is None
    assert chain_length([100, 700, 1301, 1400], 0, 600) == 2
    assert chain_length([601], 0, 600) == 0


async def test_one_alert_per_burst_and_a_new_one_after_a_quiet_window(store: Store) -> None:
    ev = evaluator(store)
    await store.insert_events([attempt(T0 + 10 * i) for i in range(4)])
    assert (await ev.run_once(now=T0 + 60)).raised == ()  # 4 attempts: nothing
    await store.insert_events([attempt(T0 + 40)])
    summary = await ev.run_once(now=T0 + 60)
    [alert] = summary.raised
    assert (alert.rule, alert.subject, alert.client, alert.group, alert.mac) == (
        "self-harm", "10.0.7.21", "10.0.7.21", "7b", MAC)
    assert (alert.attempts, alert.first_time, alert.last_time, alert.categories) == (5, T0, T0 + 40, ("self-harm",))
    assert summary.notices == 2  # one mail, one webhook call

    for i in range(21):  # the burst goes on: 20 more attempts (and one of another category)
        moment = T0 + 100 + 25 * i
        await store.insert_events([attempt(moment, "adult" if i == 7 else "self-harm")])
        assert (await ev.run_once(now=moment + 6)).raised == ()
    burst = await only_alert(store)
    assert (burst.id, burst.attempts, burst.last_time, burst.categories) == (alert.id, 25, T0 + 600, ("self-harm",))

    later = T0 + 600 + 601  # quiet for longer than a window
    await store.insert_events([attempt(later + i) for i in range(4)])
    assert (await ev.run_once(now=later + 10)).raised == ()
    await store.insert_events([attempt(later + 4)])
    [second] = (await ev.run_once(now=later + 10)).raised
    assert (second.attempts, second.first_time) == (5, later)
    assert (await store.get_alert(alert.id)).attempts == 25  # type: ignore[union-attr]
    raised = await store.list_audit(AuditFilter(action="alert.raise"))
    assert [(e.actor, e.target, e.detail) for e in raised] == [
        ("alerts", f"alert {a.id}", {"rule": "self-harm", "group": "7b", "attempts": 5}) for a in (second, alert)]
    keys = sorted(m.dedup_key for m in await store.list_messages(kind="alert"))
    assert keys == sorted(f"alert:{a.id}:{channel}:{to}" for a in (alert, second)
                          for channel, to in (("email", DSL), ("webhook", HOOK)))  # fmt: skip


async def test_a_pass_waits_for_the_resolvers_batches_to_settle(store: Store) -> None:
    ev = evaluator(store)
    await store.insert_events([attempt(T0 + i) for i in range(5)])
    assert (await ev.run_once(now=T0 + 8)).raised == ()  # the last two are under 5 s old
    assert len((await ev.run_once(now=T0 + 9.5)).raised) == 1


async def test_a_crossing_is_found_even_when_passes_were_missed(store: Store) -> None:
    # 5 attempts within 599 s: the last 10 minutes before the pass hold only one of them.
    await store.insert_events([attempt(T0 + i) for i in range(4)] + [attempt(T0 + 599)])
    raised = (await evaluator(store).run_once(now=T0 + 1000)).raised
    assert [(a.first_time, a.last_time, a.attempts) for a in raised] == [(T0, T0 + 599, 5)]
    short = AlertRule("short", categories=("hate",), threshold=3, window=60, email=(DSL,))
    await store.insert_events([attempt(T0 + i, "hate") for i in (0, 1, 2, 100, 101, 102, 103)])
    raised = (await evaluator(store, short).run_once(now=T0 + 120)).raised  # two bursts in one pass
    assert [(a.first_time, a.last_time, a.attempts) for a in raised] == [(T0, T0 + 2, 3), (T0 + 100, T0 + 103, 4)]


async def test_per_group_rule_and_the_groups_filter(store: Store) -> None:
    per_group = AlertRule("hate", categories=("hate",), threshold=5, per="group", email=(DSL,))
    only_8c = AlertRule("hate-8c", categories=("hate",), threshold=5, groups=("8c",), per="group", email=(DSL,))
    per_client = AlertRule("hate-device", categories=("hate",), threshold=5, email=(DSL,))
    await store.insert_events([attempt(T0 + i, "hate", client=f"10.0.7.{i}") for i in range(6)])
    raised = (await evaluator(store, per_group, only_8c, per_client).run_once(now=T0 + 60)).raised
    [alert] = raised
    assert (alert.rule, alert.subject_kind, alert.subject, alert.group) == ("hate", "group", "7b", "7b")
    assert (alert.client, alert.mac, alert.attempts) == ("", "", 6)  # several devices

    await store.insert_events([attempt(T0 + 100 + i, "hate", client="10.0.8.5", group="8c") for i in range(5)])
    raised = (await evaluator(store, per_group, only_8c, per_client).run_once(now=T0 + 160)).raised
    assert sorted((a.rule, a.subject) for a in raised) == [
        ("hate", "8c"), ("hate-8c", "8c"), ("hate-device", "10.0.8.5")]
    assert all(a.client == "10.0.8.5" for a in raised)  # one device only: named even per group


async def test_bypass_attempts_from_canary_names_and_the_bypass_category(store: Store) -> None:
    bypass = AlertRule("bypass", bypass=True, threshold=5, email=(DSL,))
    mixed = AlertRule("mixed", categories=("self-harm",), bypass=True, threshold=6, email=(DSL,))
    await store.insert_events([
        canary(T0), canary(T0 + 1), canary(T0 + 2),
        canary(T0 + 3, verdict="allowed", reason="default"),   # protection off: not an attempt
        attempt(T0 + 4, "", reason="deny-list"),               # blocked, but not a bypass
        attempt(T0 + 5, "bypass"), attempt(T0 + 6, "bypass"), attempt(T0 + 7, "self-harm"),
    ])  # fmt: skip
    raised = {a.rule: a for a in (await evaluator(store, bypass, mixed).run_once(now=T0 + 60)).raised}
    assert (raised["bypass"].attempts, raised["bypass"].categories) == (5, ("bypass",))
    assert (raised["mixed"].attempts, raised["mixed"].categories) == (6, ("bypass", "self-harm"))


# --- exactly once -----------------------------------------------------------------------------


async def test_a_restart_raises_nothing_twice(store_factory: StoreFactory) -> None:
    first = await store_factory()
    await first.insert_events([attempt(T0 + i) for i in range(5)])
    assert len((await evaluator(first).run_once(now=T0 + 60)).raised) == 1

    again = await store_factory()  # the same database, a new process
    restarted = evaluator(again)
    summary = await restarted.run_once(now=T0 + 70)
    assert (summary.raised, summary.notices) == ((), 0)
    await again.insert_events([attempt(T0 + 100 + i) for i in range(3)])
    summary = await restarted.run_once(now=T0 + 200)
    assert (summary.raised, summary.extended) == ((), 1)
    assert (await only_alert(again)).attempts == 8
    assert len(await again.list_messages(kind="alert")) == 2


async def test_notifications_lost_in_a_crash_are_queued_after_the_restart(store: Store) -> None:
    alert = await store.create_alert(
        rule="self-harm", subject_kind="client", subject="10.0.7.21", group="7b", client="10.0.7.21", mac="",
        categories=["self-harm"], first_time=T0, last_time=T0 + 4, attempts=5, window=600, now=T0 + 10,
    )  # fmt: skip
    assert alert is not None and await store.list_messages() == []  # crashed before queueing
    assert (await evaluator(store).run_once(now=T0 + 20)).notices == 2
    assert {m.recipient for m in await store.list_messages(kind="alert")} == {DSL, HOOK}


async def test_late_events(store: Store) -> None:
    ev = evaluator(store)
    await store.insert_events([attempt(T0 + 10 * i) for i in range(4)])
    assert (await ev.run_once(now=T0 + 100)).raised == ()
    await store.insert_events([attempt(T0 + 50)])  # written after the pass that could have seen it
    [alert] = (await ev.run_once(now=T0 + 110)).raised
    assert (alert.attempts, alert.last_time) == (5, T0 + 50)
    await store.insert_events([attempt(T0 + 45)])  # late, and older than the alert's last attempt
    assert (await ev.run_once(now=T0 + 120)).raised == ()
    await store.insert_events([attempt(T0 + 60), attempt(T0 + 115)])  # late, after it: extends it
    summary = await ev.run_once(now=T0 + 130)
    assert (summary.raised, summary.extended) == ((), 1)
    assert ((await only_alert(store)).attempts, (await only_alert(store)).last_time) == (7, T0 + 115)


async def test_two_nodes_running_forever_raise_one_alert(store_factory: StoreFactory) -> None:
    a, b = await store_factory("node-a"), await store_factory("node-b")
    now = time.time()
    await a.insert_events([attempt(now - 30 + i) for i in range(5)])
    current = config(SELF_HARM)
    runners = [AlertEvaluator(s, lambda: current, interval=0.02, settle=5.0) for s in (a, b)]
    failing = {"left": 1}
    real = a.alert_candidates

    async def flaky(*args: Any, **kwargs: Any) -> Any:  # the first call fails: the loop goes on
        if failing["left"]:
            failing["left"] -= 1
            raise StoreError("database is locked")
        return await real(*args, **kwargs)

    a.alert_candidates = flaky  # type: ignore[method-assign]
    tasks = [asyncio.create_task(r.run_forever()) for r in runners]
    try:
        deadline = time.monotonic() + 5
        while not await a.list_alerts() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # many more passes on both nodes
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(await a.list_alerts()) == 1
    assert len(await a.list_messages(kind="alert")) == 2


# --- what goes out ----------------------------------------------------------------------------


def test_the_mail_is_for_staff_and_escapes_what_it_quotes() -> None:
    rule = AlertRule("hate <b>", categories=("hate",), threshold=5, window=600, email=(DSL,))
    alert = Alert(7, "hate <b>", "client", "10.0.7.21", "7<b>", "10.0.7.21", "aa:bb:cc:00:07:21", ("hate",),
                  T0, T0 + 125, 9, T0 + 130, "node-a", None, None, "")  # fmt: skip
    mail = alert_mail(alert, rule, config(rule))
    assert mail.subject == "Safeguarding alert 7: hate <b>"
    for line in ("Rule:          hate <b>: 5 or more attempts within 10 minutes by one device",
                 "Group:         7<b>", "Device:        10.0.7.21 (MAC aa:bb:cc:00:07:21)",
                 "First attempt: 2023-11-14 22:13:20 GMT", "Last attempt:  2023-11-14 22:15:25 GMT",
                 "Attempts:      9", "https://filter.school.test/alerts/7"):  # fmt: skip
        assert line in mail.text
    assert "<td>7&lt;b&gt;</td>" in mail.html and "7<b>" not in mail.html
    assert webhook_payload(alert, config(rule))["first_seen"] == "2023-11-14T22:13:20Z"


async def test_end_to_end_the_alert_mail_and_webhook_arrive_once(store: Store) -> None:
    inbox = Inbox()
    calls: list[WebhookCall] = []
    async with smtp_server(inbox) as port, webhook_receiver(calls) as hook:
        rule = AlertRule("self-harm", categories=("self-harm",), threshold=5, window=600, email=(DSL,), webhooks=(hook,))
        ev = evaluator(store, rule)
        mail = MailConfig(host="127.0.0.1", port=port, security="none", sender="Filter <filter@school.test>", timeout=5)
        delivery = OutboxDelivery(store, mail, fetch_allow=LOOPBACK)
        await store.insert_events([attempt(T0 + 30 * i) for i in range(4)])
        assert (await ev.run_once(now=T0 + 200)).raised == ()
        await store.insert_events([attempt(T0 + 150), attempt(T0 + 160)])
        [alert] = (await ev.run_once(now=T0 + 200)).raised
        assert await delivery.run_once(now=T0 + 201) == 2
        for moment in (T0 + 300, T0 + 400):  # the burst goes on; nothing more is sent
            await store.insert_events([attempt(moment - 10)])
            assert (await ev.run_once(now=moment)).raised == ()
            assert await delivery.run_once(now=moment + 1) == 0

    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == [DSL]
    received = parse(envelope)
    assert received["Subject"] == f"Safeguarding alert {alert.id}: self-harm"
    assert received["Auto-Submitted"] == "auto-generated"
    text = received.get_body(("plain",)).get_content()
    assert f"https://filter.school.test/alerts/{alert.id}" in text and "Attempts:      6" in text
    assert "10.0.7.21 (MAC aa:bb:cc:00:07:21)" in text and "2023-11-14 22:13:20 GMT" in text
    assert "site.example" not in str(received)  # no looked-up names leave the console
    assert "<table>" in received.get_body(("html",)).get_content()

    [call] = calls
    assert call.content_type == "application/json"
    assert call.body == {
        "type": "filterdns.alert", "version": 1, "id": alert.id, "rule": "self-harm", "group": "7b",
        "client": "10.0.7.21", "mac": "aa:bb:cc:00:07:21", "categories": ["self-harm"], "attempts": 6,
        "first_seen": "2023-11-14T22:13:20Z", "last_seen": "2023-11-14T22:16:00Z",
        "url": f"https://filter.school.test/alerts/{alert.id}"}  # fmt: skip
