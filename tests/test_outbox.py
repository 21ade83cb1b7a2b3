"""The outbox and lease store API, on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from filterdns.config.model import MailConfig
from filterdns.store import OutboxMessage, Store
from tests.support import stores
from tests.support.stores import StoreFactory

pg_server, store_factory, store = stores.pg_server, stores.store_factory, stores.store

T0 = 1_700_000_000.0


async def enqueue(store: Store, key: str = "test:1", *, now: float = T0, **fields: Any) -> bool:
    values: dict[str, Any] = {
        "channel": "email", "kind": "test", "recipient": "lead@school.test", "subject": "Hello",
        "body_text": "plain", "body_html": "<p>html</p>", "headers": {"List-Unsubscribe": "<https://x.test/u>"},
    }
    values.update(fields)
    return await store.enqueue_message(dedup_key=key, now=now, **values)


# --- enqueue ------------------------------------------------------------------------------


async def test_enqueue_is_idempotent_on_the_dedup_key(store: Store) -> None:
    assert await enqueue(store, "digest:2024-01-01:ana@example.org")
    assert not await enqueue(store, "digest:2024-01-01:ana@example.org", subject="Again")
    [message] = await store.list_messages()
    assert isinstance(message, OutboxMessage)
    assert message.dedup_key == "digest:2024-01-01:ana@example.org"
    assert (message.subject, message.status, message.attempts) == ("Hello", "pending", 0)
    assert message.headers == {"List-Unsubscribe": "<https://x.test/u>"}
    assert (message.created, message.next_attempt, message.sent_at, message.last_error) == (T0, T0, None, "")


async def test_enqueue_rejects_an_unknown_channel(store: Store) -> None:
    with pytest.raises(ValueError):
        await enqueue(store, channel="pigeon")


# --- leases -------------------------------------------------------------------------------


async def test_lease_is_exclusive_renewable_and_taken_over_after_expiry(store_factory: StoreFactory) -> None:
    a = await store_factory("node-a")
    b = await store_factory("node-b")
    assert await a.acquire_lease("outbox", ttl=30, now=T0)
    assert not await b.acquire_lease("outbox", ttl=30, now=T0 + 1)
    assert await a.acquire_lease("outbox", ttl=30, now=T0 + 20)  # renewed until T0 + 50
    assert not await b.acquire_lease("outbox", ttl=30, now=T0 + 40)
    assert await b.acquire_lease("outbox", ttl=30, now=T0 + 51)  # a's lease expired
    assert not await a.acquire_lease("outbox", ttl=30, now=T0 + 52)
    assert await a.acquire_lease("digest", ttl=30, now=T0 + 52)  # leases are independent


async def test_released_lease_is_free_for_another_node(store_factory: StoreFactory) -> None:
    a = await store_factory("node-a")
    b = await store_factory("node-b")
    assert await a.acquire_lease("alerts", ttl=60, now=T0)
    await b.release_lease("alerts")  # not b's to release: no effect
    assert not await b.acquire_lease("alerts", ttl=60, now=T0 + 1)
    await a.release_lease("alerts")
    assert await b.acquire_lease("alerts", ttl=60, now=T0 + 2)


# --- claiming and delivery bookkeeping ----------------------------------------------------

RETRY = MailConfig(max_attempts=3, retry_initial=60.0, retry_max=100.0)


async def test_claim_takes_due_messages_once(store: Store) -> None:
    await enqueue(store, "a", now=T0)
    await enqueue(store, "b", now=T0 + 10, channel="webhook", recipient="http://127.0.0.1:9/hook")
    await enqueue(store, "later", now=T0 + 100)
    claimed = await store.claim_messages(10, now=T0 + 50)
    assert [m.dedup_key for m in claimed] == ["a", "b"]
    assert all(m.status == "sending" and m.attempts == 1 for m in claimed)
    assert await store.claim_messages(10, now=T0 + 60) == []  # held by this node now
    assert (await store.count_messages()) == {"pending": 1, "sending": 2, "sent": 0, "failed": 0}


async def test_claim_respects_limit_and_channels(store: Store) -> None:
    for i in range(3):
        await enqueue(store, f"mail-{i}", now=T0 + i)
    await enqueue(store, "hook", now=T0, channel="webhook", recipient="http://127.0.0.1:9/hook")
    only_hooks = await store.claim_messages(10, channels=("webhook",), now=T0 + 5)
    assert [m.dedup_key for m in only_hooks] == ["hook"]
    assert await store.claim_messages(10, channels=(), now=T0 + 5) == []
    assert [m.dedup_key for m in await store.claim_messages(2, now=T0 + 5)] == ["mail-0", "mail-1"]


async def test_two_nodes_never_claim_the_same_message(store_factory: StoreFactory) -> None:
    """Claims made at the same moment split what is due: none taken twice, none left behind
    (on PostgreSQL the second node used to wait for the first one's rows, find them taken
    and claim nothing). Several rounds, since two claims meet only some of the time."""
    a = await store_factory("node-a")
    b = await store_factory("node-b")
    for round_ in range(8):
        now = T0 + round_ * 10
        for i in range(10):
            await enqueue(a, f"r{round_}-m{i}", now=now)
        first, second = await asyncio.gather(a.claim_messages(6, now=now + 1), b.claim_messages(6, now=now + 1))
        keys = [m.dedup_key for m in first + second]
        assert len(keys) == len(set(keys)) == 10, (round_, len(first), len(second))


async def test_a_stale_claim_is_taken_again_and_says_why(store_factory: StoreFactory) -> None:
    a = await store_factory("node-a")
    b = await store_factory("node-b")
    await enqueue(a, "m", now=T0)
    [claimed] = await a.claim_messages(5, hold=600, now=T0)
    assert await b.claim_messages(5, now=T0 + 599) == []
    [again] = await b.claim_messages(5, now=T0 + 601)  # node-a died mid-send
    assert again.id == claimed.id and again.attempts == 2 and again.last_error.startswith("interrupted")


async def test_sent_messages_are_never_claimed_again(store: Store) -> None:
    await enqueue(store, "m", now=T0)
    [message] = await store.claim_messages(5, hold=60, now=T0)
    await store.mark_sent(message.id, now=T0 + 1)
    assert await store.claim_messages(5, now=T0 + 10_000) == []
    sent = await store.get_message(message.id)
    assert sent is not None and (sent.status, sent.sent_at, sent.attempts) == ("sent", T0 + 1, 1)


async def test_failures_back_off_doubling_up_to_the_maximum_then_fail(store: Store) -> None:
    await enqueue(store, "m", now=T0)
    now, waits = T0, []
    for _ in range(2):
        [message] = await store.claim_messages(5, now=now)
        failed = await store.mark_failed(message, "connection refused", now=now, retry=RETRY)
        assert failed is not None and failed.status == "pending" and failed.last_error == "connection refused"
        waits.append(failed.next_attempt - now)
        assert await store.claim_messages(5, now=failed.next_attempt - 1) == []
        now = failed.next_attempt
    assert waits == [60.0, 100.0]  # 60, then 120 capped at 100
    [message] = await store.claim_messages(5, now=now)
    gave_up = await store.mark_failed(message, "connection refused", now=now, retry=RETRY)
    assert gave_up is not None and (gave_up.status, gave_up.attempts) == ("failed", 3)
    assert await store.claim_messages(5, now=now + 10**6) == []


async def test_a_permanent_failure_fails_at_once(store: Store) -> None:
    await enqueue(store, "m", now=T0)
    [message] = await store.claim_messages(5, now=T0)
    failed = await store.mark_failed(message, "recipient refused", permanent=True, now=T0, retry=RETRY)
    assert failed is not None and (failed.status, failed.attempts) == ("failed", 1)


async def test_retry_puts_a_failed_message_back_now(store: Store) -> None:
    await enqueue(store, "m", now=T0)
    assert not await store.retry_message(1, now=T0)  # pending: nothing to retry
    [message] = await store.claim_messages(5, now=T0)
    await store.mark_failed(message, "auth failed", permanent=True, now=T0, retry=RETRY)
    assert await store.retry_message(message.id, now=T0 + 500)
    again = await store.get_message(message.id)
    assert again is not None
    assert (again.status, again.attempts, again.next_attempt, again.last_error) == ("pending", 0, T0 + 500, "auth failed")
    [claimed] = await store.claim_messages(5, now=T0 + 500)
    assert claimed.id == message.id
    assert await store.get_message(10**6) is None


async def test_listing_filters_newest_first_and_pages(store: Store) -> None:
    for i in range(5):
        await enqueue(store, f"m{i}", now=T0 + i, kind="digest" if i % 2 else "alert")
    [first] = await store.claim_messages(1, now=T0 + 10)
    await store.mark_failed(first, "boom", permanent=True, now=T0 + 10, retry=RETRY)
    assert [m.dedup_key for m in await store.list_messages()] == ["m4", "m3", "m2", "m1", "m0"]
    assert [m.dedup_key for m in await store.list_messages(kind="digest")] == ["m3", "m1"]
    assert [m.dedup_key for m in await store.list_messages(status="failed")] == ["m0"]
    assert [m.dedup_key for m in await store.list_messages(status="pending", kind="alert")] == ["m4", "m2"]
    page = await store.list_messages(limit=2)
    assert [m.dedup_key for m in await store.list_messages(limit=2, before_id=page[-1].id)] == ["m2", "m1"]
    with pytest.raises(ValueError):
        await store.list_messages(status="lost")


async def test_retention_deletes_only_old_finished_messages(store: Store) -> None:
    for key in ("sent", "failed", "pending", "new-sent"):
        await enqueue(store, key, now=T0 + (1000 if key == "new-sent" else 0))
    claimed = {m.dedup_key: m for m in await store.claim_messages(10, now=T0 + 1000)}
    await store.mark_sent(claimed["sent"].id, now=T0 + 1000)
    await store.mark_sent(claimed["new-sent"].id, now=T0 + 1000)
    await store.mark_failed(claimed["failed"], "x", permanent=True, now=T0 + 1000, retry=RETRY)
    await store.mark_failed(claimed["pending"], "x", now=T0 + 1000, retry=RETRY)
    assert await store.delete_old_messages(T0 + 500) == 2
    assert sorted(m.dedup_key for m in await store.list_messages()) == ["new-sent", "pending"]
    assert await enqueue(store, "sent")  # its key went with it
