"""The safeguarding alerts' store API, on SQLite and on a throwaway PostgreSQL server: which
lookups count for a rule, the burst bookkeeping (create once, extend without counting twice),
and the console's reads and acknowledgement."""

from __future__ import annotations

from typing import Any

import pytest

from filterdns.config.model import AlertRule
from filterdns.store import Alert, Store
from filterdns.store.alerts import attempt_category
from tests.support import stores
from tests.support.alerts import MAC, attempt, canary

pg_server, store_factory, store = stores.pg_server, stores.store_factory, stores.store

T0 = 1_700_000_000.0
SELF_HARM = AlertRule("self-harm", categories=("self-harm", "hate"), threshold=3, window=600, email=("dsl@school.test",))
BYPASS = AlertRule("bypass", bypass=True, threshold=2, window=600, per="group", webhooks=("http://127.0.0.1/x",))


async def new_alert(store: Store, rule: AlertRule = SELF_HARM, subject: str = "10.0.7.21", **changes: Any) -> Alert | None:
    fields: dict[str, Any] = dict(
        rule=rule.name, subject_kind=rule.per, subject=subject, group="7b", client=subject, mac="",
        categories=["self-harm"], first_time=T0, last_time=T0 + 60, attempts=3, window=rule.window, now=T0 + 70,
    )  # fmt: skip
    fields.update(changes)
    return await store.create_alert(**fields)


# --- which lookups count ------------------------------------------------------------------------


async def test_candidates_are_subjects_with_enough_matching_blocked_lookups(store: Store) -> None:
    await store.insert_events([
        attempt(T0), attempt(T0 + 10, "hate"), attempt(T0 + 20),               # 3 matching: a candidate
        attempt(T0 + 5, client="10.0.7.22"), attempt(T0 + 6, client="10.0.7.22"),  # only 2
        attempt(T0 + 7, "adult", client="10.0.7.22"),                          # not the rule's category
        attempt(T0 + 8, client="10.0.7.22", verdict="allowed"),                # allowed: does not count
        attempt(T0 + 30, client="10.0.7.23"), attempt(T0 + 31, client="10.0.7.23"),
        attempt(T0 + 900, client="10.0.7.23"),                                  # outside the span
    ])  # fmt: skip
    [candidate] = await store.alert_candidates(SELF_HARM, since=T0, until=T0 + 600)
    assert (candidate.subject, candidate.attempts, candidate.first_time, candidate.last_time) == (
        "10.0.7.21", 3, T0, T0 + 20)
    # since <= time < until
    assert await store.alert_candidates(SELF_HARM, since=T0 + 1, until=T0 + 600) == []
    assert await store.alert_candidates(SELF_HARM, since=T0, until=T0 + 20) == []


async def test_per_group_and_the_groups_filter(store: Store) -> None:
    await store.insert_events([attempt(T0 + i, client=f"10.0.7.{i}") for i in range(3)]
                              + [attempt(T0 + i, client=f"10.0.8.{i}", group="8c") for i in range(3)])
    per_group = AlertRule("g", categories=("self-harm",), threshold=3, per="group", email=("a@b.test",))
    assert [c.subject for c in await store.alert_candidates(per_group, since=T0, until=T0 + 60)] == ["7b", "8c"]
    assert await store.alert_candidates(SELF_HARM, since=T0, until=T0 + 60) == []  # 1 per device
    only_8c = AlertRule("g", categories=("self-harm",), threshold=3, per="group", groups=("8c",), email=("a@b.test",))
    assert [c.subject for c in await store.alert_candidates(only_8c, since=T0, until=T0 + 60)] == ["8c"]


async def test_per_pupil_follows_the_pupil_across_devices_and_ignores_the_unnamed(store: Store) -> None:
    # One pupil on a Chromebook at school and a laptop at home (DoH, different addresses),
    # and three lookups by devices nobody named: only the pupil is a candidate.
    await store.insert_events([
        attempt(T0, client="10.0.7.21", pupil="p-101"), attempt(T0 + 1, client="10.0.7.21", pupil="p-101"),
        attempt(T0 + 2, client="192.0.2.44", pupil="p-101"),
        attempt(T0 + 3, client="10.0.7.30"), attempt(T0 + 4, client="10.0.7.31"), attempt(T0 + 5, client="10.0.7.32"),
    ])  # fmt: skip
    per_pupil = AlertRule("p", categories=("self-harm",), threshold=3, per="pupil", email=("a@b.test",))
    [candidate] = await store.alert_candidates(per_pupil, since=T0, until=T0 + 60)
    assert (candidate.subject, candidate.attempts) == ("p-101", 3)
    attempts = await store.alert_attempts(per_pupil, subjects=["p-101"], since=T0, until=T0 + 60)
    assert [a.client for a in attempts] == ["10.0.7.21", "10.0.7.21", "192.0.2.44"]


async def test_bypass_counts_canary_names_and_the_bypass_category(store: Store) -> None:
    await store.insert_events([
        canary(T0), attempt(T0 + 1, "bypass"), attempt(T0 + 2, "self-harm"),
        canary(T0 + 3, verdict="allowed", reason="default"),  # bypass protection off for the group
    ])  # fmt: skip
    [candidate] = await store.alert_candidates(BYPASS, since=T0, until=T0 + 60)
    assert (candidate.subject, candidate.attempts) == ("7b", 2)
    attempts = await store.alert_attempts(BYPASS, subjects=["7b"], since=T0, until=T0 + 60)
    assert [(a.time, a.category, a.client, a.group) for a in attempts] == [
        (T0, "bypass", "10.0.7.21", "7b"), (T0 + 1, "bypass", "10.0.7.21", "7b")]
    assert attempt_category("bypass-protection", "") == "bypass"
    assert attempt_category("category", "hate") == "hate"


async def test_attempts_are_the_uncovered_ones_oldest_first(store: Store) -> None:
    await store.insert_events([attempt(T0 + 30, mac="aa:bb:cc:dd:ee:01"), attempt(T0 + 10, mac=""),
                               attempt(T0 + 20, "hate"), attempt(T0 + 5, client="10.0.7.99")])
    attempts = await store.alert_attempts(SELF_HARM, subjects=["10.0.7.21"], since=T0, until=T0 + 60)
    assert [(a.time, a.category, a.mac) for a in attempts] == [
        (T0 + 10, "self-harm", ""), (T0 + 20, "hate", MAC), (T0 + 30, "self-harm", "aa:bb:cc:dd:ee:01")]
    await new_alert(store, first_time=T0 + 10, last_time=T0 + 20)
    assert [a.time for a in await store.alert_attempts(
        SELF_HARM, subjects=["10.0.7.21"], since=T0, until=T0 + 60)] == [T0 + 30]
    assert await store.alert_candidates(SELF_HARM, since=T0, until=T0 + 60) == []
    # Another rule's alert covers nothing of this rule's.
    other = AlertRule("other", categories=("self-harm", "hate"), threshold=1, email=("a@b.test",))
    assert len(await store.alert_attempts(other, subjects=["10.0.7.21"], since=T0, until=T0 + 60)) == 3


# --- burst bookkeeping --------------------------------------------------------------------------


async def test_an_alert_is_created_once_per_burst(store: Store) -> None:
    alert = await new_alert(store, mac="aa:bb:cc:dd:ee:01", categories=["hate", "self-harm"])
    assert alert is not None and alert.open
    assert (alert.rule, alert.subject_kind, alert.subject, alert.group, alert.client, alert.mac) == (
        "self-harm", "client", "10.0.7.21", "7b", "10.0.7.21", "aa:bb:cc:dd:ee:01")
    assert (alert.categories, alert.first_time, alert.last_time, alert.attempts) == (
        ("hate", "self-harm"), T0, T0 + 60, 3)
    assert (alert.created, alert.node, alert.acknowledged_by, alert.acknowledged_at, alert.note) == (
        T0 + 70, "node-a", None, None, "")
    # The same burst again (another evaluator), or one starting within the window: refused.
    assert await new_alert(store) is None
    assert await new_alert(store, first_time=T0 + 600, last_time=T0 + 700) is None
    # Quiet for longer than the window: a new burst. Another subject or rule: independent.
    assert await new_alert(store, first_time=T0 + 661, last_time=T0 + 700) is not None
    assert await new_alert(store, subject="10.0.7.22") is not None
    assert await new_alert(store, BYPASS, subject="10.0.7.21") is not None
    assert await store.get_alert(alert.id) == alert


async def test_extending_never_counts_the_same_attempts_twice(store: Store) -> None:
    alert = await new_alert(store)
    assert alert is not None
    grown = await store.extend_alert(alert.id, attempts=2, last_time=T0 + 90, categories=["hate", "self-harm"],
                                     client="10.0.7.21", mac="aa:bb:cc:dd:ee:01")  # fmt: skip
    assert grown is not None
    assert (grown.attempts, grown.last_time, grown.categories, grown.mac) == (
        5, T0 + 90, ("hate", "self-harm"), "aa:bb:cc:dd:ee:01")
    assert await store.extend_alert(alert.id, attempts=2, last_time=T0 + 90, categories=[], client="", mac="") is None
    assert await store.extend_alert(9999, attempts=1, last_time=T0 + 99, categories=[], client="", mac="") is None
    assert (await store.get_alert(alert.id)).attempts == 5  # type: ignore[union-attr]


async def test_recent_alerts_are_per_rule_and_kind_oldest_first(store: Store) -> None:
    a = await new_alert(store, first_time=T0, last_time=T0 + 100)
    b = await new_alert(store, subject="10.0.7.22", first_time=T0, last_time=T0 + 50)
    await new_alert(store, BYPASS, subject="7b")
    assert a is not None and b is not None
    assert [x.id for x in await store.recent_alerts("self-harm", "client", since=T0)] == [b.id, a.id]
    assert [x.id for x in await store.recent_alerts("self-harm", "client", since=T0 + 60)] == [a.id]
    assert await store.recent_alerts("self-harm", "group", since=T0) == []


# --- the console's side ------------------------------------------------------------------------


async def test_listing_acknowledging_counting_and_retention(store: Store) -> None:
    alerts = [await new_alert(store, subject=f"10.0.7.{i}", now=T0 + i) for i in range(5)]
    ids = [a.id for a in alerts if a is not None]
    assert len(ids) == 5 and await store.open_alert_count() == 5
    assert [a.id for a in await store.list_alerts()] == ids[::-1]
    assert [a.id for a in await store.list_alerts(limit=2, before_id=ids[3])] == [ids[2], ids[1]]
    assert [a.id for a in await store.list_alerts(created_since=T0 + 3)] == [ids[4], ids[3]]

    done = await store.acknowledge_alert(ids[1], by="ada", note="Spoke to the form tutor.", now=T0 + 500)
    assert done is not None and not done.open
    assert (done.acknowledged_by, done.acknowledged_at, done.note) == ("ada", T0 + 500, "Spoke to the form tutor.")
    assert await store.acknowledge_alert(ids[1], by="bob", note="again") is None  # once only
    assert await store.acknowledge_alert(9999, by="bob", note="none") is None
    assert await store.open_alert_count() == 4
    assert [a.id for a in await store.list_alerts(status="acknowledged")] == [ids[1]]
    assert ids[1] not in [a.id for a in await store.list_alerts(status="open")]
    with pytest.raises(ValueError):
        await store.list_alerts(status="closed")  # type: ignore[arg-type]

    assert await store.delete_alerts_before(T0 + 2) == 2
    assert [a.id for a in await store.list_alerts()] == ids[:1:-1]
    assert await store.get_alert(ids[0]) is None
