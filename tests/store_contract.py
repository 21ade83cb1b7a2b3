"""What every store backend must do, run against a real database of each kind.

``test_store_sqlite.py`` and ``test_store_postgres.py`` subclass ``StoreContract`` and
provide two fixtures: ``store_factory(node="node-a", **settings)``, which opens another
store on the same database (as another node, or again after a close), and ``outage()``,
a context manager during which the database refuses writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from filterdns.resolver.events import QueryEvent
from filterdns.resolver.recorder import Recorder
from filterdns.store import (
    DAY,
    HOUR,
    AuditFilter,
    Conflict,
    EventFilter,
    Store,
    StoreError,
    StoreSink,
)
from filterdns.store.base import load_migrations
from tests.support.stores import StoreFactory

# The newest migration in the schema files: a new one must not break these tests.
LATEST_SCHEMA = load_migrations("schema_sqlite.sql")[-1][0]

T0 = 1_700_002_800.0  # 2023-11-14 23:00:00 UTC, the start of an hour


def make_event(t: float = T0, name: str = "www.example.org", **changes: Any) -> QueryEvent:
    fields: dict[str, Any] = dict(
        time=t, client="10.10.7.21", group="class-7a", name=name, qtype=1,
        verdict="allowed", reason="", category="", rcode=0, latency_ms=1.5,
        answered_by="cache", transport="udp", mac="",
    )
    fields.update(changes)
    return QueryEvent(**fields)


def blocked(t: float, name: str, category: str = "adult", **changes: Any) -> QueryEvent:
    return make_event(t, name, verdict="blocked", reason=f"category:{category}",
                      category=category, rcode=0, answered_by="policy", **changes)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def all_events(store: Store, where: EventFilter = EventFilter()) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await store.search_events(where, limit=500, cursor=cursor)
        rows += page.rows
        if not page.has_more:
            return rows
        cursor = page.next_cursor


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


class StoreContract:
    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> Store:
        return await store_factory()

    # --- query events -----------------------------------------------------------------

    async def test_events_round_trip_newest_first(self, store: Store) -> None:
        events = [
            make_event(T0, "a.example.org", mac="aa:bb:cc:dd:ee:ff"),
            blocked(T0 + 1.25, "b.example.org", qtype=28, transport="doh", latency_ms=0.125, pupil="p-101"),
            make_event(T0 + 2, "c.example.org", verdict="error", rcode=2, answered_by=""),
        ]
        await store.insert_events(events)
        page = await store.search_events()
        assert not page.has_more and page.next_cursor is None
        assert names(page.rows) == ["c.example.org", "b.example.org", "a.example.org"]
        for row, event in zip(page.rows, reversed(events), strict=True):
            assert isinstance(row.pop("id"), int)
            assert row.pop("node") == "node-a"
            assert row == event.to_dict()

    async def test_events_survive_close_and_reopen(self, store_factory: StoreFactory) -> None:
        store = await store_factory()
        await store.insert_events([make_event(T0 + i, f"h{i}.example.org") for i in range(5)])
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(StoreError):
            await store.search_events()
        reopened = await store_factory()
        assert names(await all_events(reopened)) == [f"h{i}.example.org" for i in reversed(range(5))]
        assert (await reopened.query_aggregates(T0, T0 + HOUR))[0]["count"] == 5

    async def test_search_filters(self, store: Store) -> None:
        await store.insert_events([
            make_event(T0, "example.com"),
            make_event(T0 + 1, "www.example.com", client="10.10.7.22", transport="dot", pupil="p-101"),
            make_event(T0 + 2, "badexample.com", group="class-8b"),
            blocked(T0 + 3, "www.youtube.com", "video", group="class-8b"),
            blocked(T0 + 4, "a_b.test", "adult"),
            make_event(T0 + 5, "axb.test", group="staff"),
        ])

        async def found(**where: Any) -> list[str]:
            return names(await all_events(store, EventFilter(**where)))

        assert await found(groups=("class-8b",)) == ["www.youtube.com", "badexample.com"]
        assert await found(groups=("class-8b", "staff")) == ["axb.test", "www.youtube.com", "badexample.com"]
        assert await found(groups=()) == []
        assert await found(client="10.10.7.22") == ["www.example.com"]
        assert await found(pupil="p-101") == ["www.example.com"]
        assert await found(name_contains="TUBE") == ["www.youtube.com"]
        assert await found(name_contains="_") == ["a_b.test"]  # not a LIKE wildcard
        assert await found(domain="example.com.") == ["www.example.com", "example.com"]
        assert await found(verdict="blocked") == ["a_b.test", "www.youtube.com"]
        assert await found(category="video") == ["www.youtube.com"]
        assert await found(since=T0 + 1, until=T0 + 3) == ["badexample.com", "www.example.com"]
        assert await found(verdict="blocked", groups=("class-7a",), since=T0) == ["a_b.test"]

    async def test_keyset_pagination_is_complete_and_stable(self, store: Store) -> None:
        # Ten events share one timestamp: the id breaks the tie, so none is lost or repeated.
        await store.insert_events(
            [make_event(T0 + (i if i < 15 else 15), f"h{i:02}.test") for i in range(25)]
        )
        seen: list[dict[str, Any]] = []
        page = await store.search_events(limit=7)
        seen += page.rows
        # Newer events arriving between pages must not shift the following pages.
        await store.insert_events([make_event(T0 + 100, "late.test")])
        while page.has_more:
            page = await store.search_events(limit=7, cursor=page.next_cursor)
            seen += page.rows
        assert len(seen) == 25 and len({row["id"] for row in seen}) == 25
        keys = [(row["time"], row["id"]) for row in seen]
        assert keys == sorted(keys, reverse=True)
        assert "late.test" not in names(seen)
        with pytest.raises(ValueError):
            await store.search_events(cursor="not-a-cursor")

    # --- aggregates -------------------------------------------------------------------

    async def test_hourly_aggregates(self, store: Store) -> None:
        await store.insert_events([
            make_event(T0), make_event(T0 + 10), blocked(T0 + 20, "x.test"),
            make_event(T0 + HOUR + 5, group="class-8b"),
        ])
        await store.insert_events([blocked(T0 + 30, "y.test"), blocked(T0 + 2 * HOUR, "z.test", "games")])
        rows = await store.query_aggregates(T0, T0 + 3 * HOUR)
        keys = ("start", "group", "verdict", "category", "count")
        assert rows == [dict(zip(keys, values, strict=True)) for values in [
            (T0, "class-7a", "allowed", "", 2),
            (T0, "class-7a", "blocked", "adult", 2),
            (T0 + HOUR, "class-8b", "allowed", "", 1),
            (T0 + 2 * HOUR, "class-7a", "blocked", "games", 1),
        ]]
        # An hour counts when its start is in [since, until).
        assert len(await store.query_aggregates(T0 + 1, T0 + 2 * HOUR)) == 1
        assert await store.query_aggregates(T0, T0 + 3 * HOUR, groups=["class-8b"]) == [rows[2]]
        day = (T0 // DAY) * DAY  # T0 is 23:00 UTC: T0 + 2 h is on the next day
        daily = await store.query_aggregates(day, day + 2 * DAY, bucket=DAY, groups=["class-7a"])
        assert [(r["start"], r["verdict"], r["category"], r["count"]) for r in daily] == [
            (day, "allowed", "", 2), (day, "blocked", "adult", 2), (day + DAY, "blocked", "games", 1),
        ]
        with pytest.raises(ValueError):
            await store.query_aggregates(T0, T0 + HOUR, bucket=60)

    async def test_devices_behind_the_hourly_counts(self, store_factory: StoreFactory) -> None:
        store = await store_factory()
        await store.insert_events([
            make_event(T0), make_event(T0 + 1), blocked(T0 + 2, "x.test"),  # one device, three lookups
            make_event(T0 + 3, client="10.10.7.22"),
            make_event(T0 + 4, client="10.10.7.22", mac="aa:bb:cc:dd:ee:01"),  # a MAC names another device
            make_event(T0 + 5, client="10.10.7.23", pupil="p-17"),
            make_event(T0 + 6, client="10.10.7.24", pupil="p-17"),  # the same pupil on another address
            make_event(T0 + HOUR, group="class-8b"),
        ])
        rows = await store.query_devices(T0, T0 + HOUR, group="class-7a")
        assert len({r["device"] for r in rows}) == 4
        assert sorted((r["hour"], r["verdict"], r["category"]) for r in rows) == sorted(
            [(T0, "allowed", "")] * 4 + [(T0, "blocked", "adult")]
        )
        assert not any("10.10.7" in r["device"] or "p-17" in r["device"] for r in rows)  # pseudonyms only
        assert await store.count_devices(T0, T0 + 2 * HOUR, group="class-7a") == 4
        assert await store.count_devices(T0, T0 + 2 * HOUR, group="class-7a", verdict="blocked") == 1
        assert await store.count_devices(T0 + 1, T0 + 2 * HOUR, group="class-7a") == 0  # hours start in the span
        # Another node (or the same after a restart) names the same device the same way.
        other = await store_factory(node="node-b")
        await other.insert_events([make_event(T0 + 10), blocked(T0 + HOUR, "x.test", group="class-8b")])
        assert await store.count_devices(T0, T0 + HOUR, group="class-7a") == 4
        assert await store.count_devices(T0, T0 + 2 * HOUR, group="class-8b") == 1
        await store.delete_counts_before(T0 + HOUR)
        assert await store.query_devices(T0, T0 + HOUR, group="class-7a") == []
        assert await store.count_devices(T0, T0 + 2 * HOUR, group="class-8b") == 1

    async def test_top_blocked(self, store: Store) -> None:
        await store.insert_events([
            blocked(T0, "a.test", "adult"), blocked(T0 + 1, "a.test", "adult"),
            blocked(T0 + 2, "b.test", "adult"), blocked(T0 + 3, "g.test", "games"),
            blocked(T0 + 4, "g.test", "games", group="class-8b"),
            make_event(T0 + 5, "a.test"),  # allowed: not counted
        ])
        assert await store.top_blocked(T0, T0 + HOUR) == [
            {"key": "adult", "count": 3}, {"key": "games", "count": 2}]
        assert await store.top_blocked(T0, T0 + HOUR, by="name", limit=2) == [
            {"key": "a.test", "count": 2}, {"key": "g.test", "count": 2}]
        assert await store.top_blocked(T0, T0 + HOUR, groups=["class-8b"], by="name") == [
            {"key": "g.test", "count": 1}]
        assert await store.top_blocked(T0 + HOUR, T0 + 2 * HOUR) == []

    # --- users, sessions, tokens ------------------------------------------------------

    async def test_users(self, store: Store) -> None:
        alice = await store.create_user("alice", "teacher", "$argon2id$v=19$abc",
                                        groups=["class-7a", "class-8b"], now=T0)
        assert (alice.role, alice.groups, alice.disabled, alice.failed_logins, alice.created) == (
            "teacher", ("class-7a", "class-8b"), False, 0, T0)
        assert await store.get_user("alice") == alice
        with pytest.raises(Conflict):
            await store.create_user("alice", "admin", "x")
        with pytest.raises(ValueError):
            await store.create_user("bob", "superuser", "x")  # type: ignore[arg-type]
        await store.create_user("bob", "admin", "h")
        changed = await store.update_user("alice", role="viewer", groups=[], disabled=True,
                                          password_hash="new")
        assert changed is not None
        assert (changed.role, changed.groups, changed.disabled, changed.password_hash) == (
            "viewer", (), True, "new")
        assert await store.update_user("alice") == changed
        assert await store.update_user("nobody", disabled=True) is None
        assert [u.name for u in await store.list_users()] == ["alice", "bob"]

    async def test_login_attempts_are_counted_first_and_lock_the_account(self, store: Store) -> None:
        await store.create_user("carol", "parent", "h", groups=["class-7a"])
        for expected in (1, 2):
            user = await store.reserve_login_attempt("carol", now=T0, lock_after=3, lock_seconds=600)
            assert user is not None and user.failed_logins == expected and not user.is_locked(T0)
        user = await store.reserve_login_attempt("carol", now=T0, lock_after=3, lock_seconds=600)
        assert user is not None and user.locked_until == T0 + 600 and user.failed_logins == 0
        assert user.is_locked(T0 + 599) and not user.is_locked(T0 + 600)
        # While locked, no attempt may be reserved; once the lock ends, counting starts again.
        assert await store.reserve_login_attempt("carol", now=T0 + 599, lock_after=3) is None
        user = await store.reserve_login_attempt("carol", now=T0 + 600, lock_after=3)
        assert user is not None and user.failed_logins == 1
        await store.note_login_success("carol")
        user = await store.get_user("carol")
        assert user is not None and user.failed_logins == 0 and user.locked_until is None
        assert await store.reserve_login_attempt("nobody", now=T0) is None

    async def test_sessions(self, store: Store) -> None:
        await store.create_user("dave", "admin", "h")
        session = await store.create_session("hash-1", "dave", "csrf-1", T0 + 3600, now=T0)
        assert (session.user, session.csrf_token, session.created, session.expires) == (
            "dave", "csrf-1", T0, T0 + 3600)
        assert await store.get_session("hash-1", now=T0 + 3599) == session
        assert await store.get_session("hash-1", now=T0 + 3600) is None  # expired
        with pytest.raises(Conflict):
            await store.create_session("hash-1", "dave", "csrf-2", T0 + 10)
        with pytest.raises(Conflict):  # no such user
            await store.create_session("hash-2", "nobody", "csrf", T0 + 10)
        await store.create_session("hash-3", "dave", "csrf-3", T0 + 3600, now=T0)
        assert await store.delete_session("hash-1")
        assert not await store.delete_session("hash-1")
        assert await store.delete_user_sessions("dave") == 1

    async def test_api_tokens(self, store: Store) -> None:
        await store.create_user("erin", "viewer", "h")
        token = await store.create_api_token("tok-hash", "erin", "grafana", now=T0)
        assert (token.user, token.name, token.created, token.last_used) == ("erin", "grafana", T0, None)
        used = await store.use_api_token("tok-hash", now=T0 + 5)
        assert used is not None and used.id == token.id and used.last_used == T0 + 5
        assert await store.use_api_token("unknown") is None
        with pytest.raises(Conflict):
            await store.create_api_token("tok-hash", "erin", "again")
        assert await store.list_api_tokens("erin") == [used]
        assert await store.list_api_tokens("nobody") == []
        assert await store.delete_api_token(token.id)
        assert await store.list_api_tokens() == []

    async def test_deleting_a_user_ends_their_sessions_and_tokens(self, store: Store) -> None:
        await store.create_user("frank", "admin", "h")
        await store.create_session("s", "frank", "c", T0 + 3600, now=T0)
        await store.create_api_token("t", "frank", "cli")
        assert await store.delete_user("frank")
        assert not await store.delete_user("frank")
        assert await store.get_session("s", now=T0) is None
        assert await store.use_api_token("t") is None

    # --- policy revisions, audit ------------------------------------------------------

    async def test_policy_revisions(self, store: Store) -> None:
        assert await store.latest_revision_id() == 0
        assert await store.latest_revision() is None
        first = await store.add_revision("groups: {}\n", "alice", "initial", now=T0)
        second = await store.add_revision("groups: {a: {}}\n", "bob", now=T0 + 1)
        assert 0 < first < second == await store.latest_revision_id()
        latest = await store.latest_revision()
        assert latest is not None
        assert (latest.id, latest.author, latest.comment, latest.yaml_text, latest.created, latest.node) == (
            second, "bob", "", "groups: {a: {}}\n", T0 + 1, "node-a")
        assert (await store.get_revision(first)).comment == "initial"  # type: ignore[union-attr]
        assert await store.get_revision(999) is None
        assert [r.id for r in await store.list_revisions()] == [second, first]
        assert [r.id for r in await store.list_revisions(before_id=second)] == [first]

    async def test_audit_log(self, store: Store) -> None:
        await store.audit("alice", "login", now=T0)
        await store.audit("alice", "override.add", "class-7a",
                          {"domain": "example.org", "minutes": 30, "nested": [1, {"a": None}]}, now=T0 + 1)
        await store.audit("bob", "user.disable", "alice", now=T0 + 2)
        entries = await store.list_audit()
        assert [e.action for e in entries] == ["user.disable", "override.add", "login"]
        assert entries[1].detail == {"domain": "example.org", "minutes": 30, "nested": [1, {"a": None}]}
        assert (entries[1].actor, entries[1].target, entries[1].time, entries[1].node) == (
            "alice", "class-7a", T0 + 1, "node-a")
        assert entries[2].detail == {}

        async def actions(where: AuditFilter = AuditFilter(), **paging: Any) -> list[str]:
            return [e.action for e in await store.list_audit(where, **paging)]

        assert await actions(AuditFilter(actor="alice")) == ["override.add", "login"]
        assert await actions(AuditFilter(target="alice")) == ["user.disable"]
        assert await actions(AuditFilter(since=T0 + 1, until=T0 + 2)) == ["override.add"]
        assert await actions(limit=1, before_id=entries[0].id) == ["override.add"]

    # --- overrides, review requests ---------------------------------------------------

    async def test_overrides(self, store: Store) -> None:
        allow = await store.add_override("class-7a", "allow", domain="Docs.Example.ORG.",
                                         created_by="alice", expires_at=T0 + 1800, now=T0)
        assert (allow.group, allow.kind, allow.domain, allow.category, allow.created_by,
                allow.created_at, allow.expires_at, allow.revoked) == (
            "class-7a", "allow", "docs.example.org", "", "alice", T0, T0 + 1800, False)
        block = await store.add_override("class-8b", "block", category="games",
                                         created_by="bob", expires_at=T0 + 600, now=T0)
        assert await store.list_active_overrides(now=T0 + 1) == [allow, block]
        assert await store.list_active_overrides(now=T0 + 600) == [allow]  # block expired
        assert await store.revoke_override(allow.id)
        assert not await store.revoke_override(allow.id)
        assert not await store.revoke_override(9999)
        assert await store.list_active_overrides(now=T0 + 1) == [block]
        for bad in (dict(domain="x.test", category="games"), dict()):
            with pytest.raises(ValueError):
                await store.add_override("g", "allow", created_by="a", expires_at=T0 + 1, now=T0, **bad)
        with pytest.raises(ValueError):
            await store.add_override("g", "allow", domain="x.test", created_by="a", expires_at=T0, now=T0)
        with pytest.raises(ValueError):
            await store.add_override("g", "maybe", domain="x.test", created_by="a",  # type: ignore[arg-type]
                                     expires_at=T0 + 1, now=T0)

    async def test_review_requests(self, store: Store) -> None:
        first = await store.add_review_request("wiki.test", "class-7a", "10.10.7.21",
                                               "needed for homework", now=T0)
        assert (first.status, first.decided_by, first.decided_at, first.node, first.reason) == (
            "pending", None, None, "node-a", "needed for homework")
        second = await store.add_review_request("game.test", "class-8b", "10.10.8.3", "", now=T0 + 1)
        assert await store.list_review_requests() == [second, first]
        assert await store.list_review_requests(groups=["class-7a"]) == [first]
        decided = await store.decide_review_request(first.id, "approved", "alice", now=T0 + 60)
        assert decided is not None
        assert (decided.status, decided.decided_by, decided.decided_at) == ("approved", "alice", T0 + 60)
        assert await store.decide_review_request(first.id, "declined", "bob") is None  # decided already
        assert await store.list_review_requests(status="pending") == [second]
        assert await store.list_review_requests(status="approved") == [decided]
        assert await store.list_review_requests(limit=1, before_id=second.id) == [decided]
        with pytest.raises(ValueError):
            await store.decide_review_request(second.id, "pending", "bob")  # type: ignore[arg-type]

    async def test_parent_notes(self, store: Store) -> None:
        first = await store.add_parent_note("ana@x.example", "Ana", "7a", "home", "maths.test",
                                            "Blocked for homework", now=T0)
        assert (first.child, first.group, first.place, first.site, first.answer, first.answered_at) == (
            "Ana", "7a", "home", "maths.test", None, None)
        second = await store.add_parent_note("bo@x.example", "Bo", "8b", "school", "", "A concern", now=T0 + 1)
        assert await store.list_parent_notes() == [second, first]
        assert await store.list_parent_notes(parent="ana@x.example") == [first]
        assert await store.list_parent_notes(groups=["8b"]) == [second]
        assert await store.list_parent_notes(groups=[]) == []
        answered = await store.answer_parent_note(first.id, "Unblocked, sorry", "alice", now=T0 + 60)
        assert answered is not None
        assert (answered.answer, answered.answered_by, answered.answered_at) == ("Unblocked, sorry", "alice", T0 + 60)
        assert await store.answer_parent_note(first.id, "again", "bob") is None  # answered already
        assert await store.list_parent_notes(answered=False) == [second]
        assert await store.list_parent_notes(answered=True) == [answered]
        with pytest.raises(StoreError):
            await store.add_parent_note("ana@x.example", "Ana", "7a", "moon", "", "x")  # type: ignore[arg-type]

    # --- take-home devices ---------------------------------------------------------------

    async def test_home_settings_are_revisions_and_parents_link_to_pupils(self, store: Store) -> None:
        await store.create_user("ana@example.org", "parent", "h")
        await store.save_parent_profile("ana@example.org", [("Bia", "7b")])
        assert await store.set_parent_pupils("ana@example.org", ["p-1"])
        assert (await store.get_parent_profile("ana@example.org")).pupils == ("p-1",)
        first = await store.save_home_settings("p-1", {"block": ["games"]}, author="ana@example.org", now=T0)
        second = await store.save_home_settings("p-1", {"block": []}, author="ana@example.org", now=T0 + 1)
        await store.save_home_settings("p-2", {"paused_until": T0 + 60}, author="bo@example.org", now=T0)
        current = await store.current_home_settings()
        assert (current["p-1"].id, current["p-1"].settings) == (second.id, {"block": []})
        assert current["p-2"].author == "bo@example.org"
        assert [r.id for r in await store.home_settings_history("p-1")] == [second.id, first.id]
        await store.insert_events([
            make_event(T0, "games.test", group="7b@home", verdict="blocked", category="games", pupil="p-1"),
            make_event(T0, "games.test", group="7b@home", verdict="blocked", category="games", pupil="p-1"),
            make_event(T0, "late.test", group="7b@home", verdict="blocked", pupil="p-1"),
            make_event(T0, "school.test", group="7b", verdict="blocked", category="games", pupil="p-1"),
            make_event(T0, "other.test", group="7b@home", verdict="blocked", category="games", pupil="p-2"),
            make_event(T0, "fine.test", group="7b@home", pupil="p-1"),
        ])
        categories, names = await store.count_home_blocked("p-1", T0 - 1, T0 + 1)
        assert categories == [("games", 2), ("", 1)]
        assert names == [("games.test", 2), ("late.test", 1)]

    # --- retention, health ------------------------------------------------------------

    async def test_retention_deletes_only_what_is_too_old(self, store_factory: StoreFactory) -> None:
        store = await store_factory(raw_events_days=30, aggregates_days=400, audit_days=730)
        now = T0 + 1000 * DAY
        await store.insert_events([
            make_event(now - 401 * DAY, "ancient.test"),
            make_event(now - 31 * DAY, "old.test"),
            make_event(now - 29 * DAY, "recent.test"),
            make_event(now - 15 * DAY, "home-old.test", group="7b@home"),
            make_event(now - 13 * DAY, "home-recent.test", group="7b@home"),
        ])
        await store.audit("a", "old", now=now - 731 * DAY)
        await store.audit("a", "kept", now=now - 729 * DAY)
        for days in (731, 729):  # parents' notes are kept as long as the audit log
            await store.add_parent_note("p@x.example", "Ana", "7b", "home", "", f"{days}", now=now - days * DAY)
        await store.create_user("u", "admin", "h")
        await store.create_session("expired", "u", "c", now - 1)
        await store.create_session("live", "u", "c", now + 100)
        for days in (31, 29):  # sent mail is kept as long as raw events
            await store.enqueue_message(dedup_key=f"m{days}", channel="email", kind="test", recipient="a@b.example",
                                        subject="s", body_text="t", now=now - days * DAY)  # fmt: skip
            (claimed,) = await store.claim_messages(1, now=now - days * DAY)
            await store.mark_sent(claimed.id, now=now - days * DAY)
        await store.enqueue_message(dedup_key="pending", channel="email", kind="test", recipient="a@b.example",
                                    subject="s", body_text="t", now=now - 31 * DAY)  # fmt: skip

        deleted = await store.enforce_retention(now)

        assert deleted == {
            "events": 2, "home_events": 2, "aggregates": 1, "audit": 1, "sessions": 1, "messages": 1, "alerts": 0,
            "parent_notes": 1,
        }
        assert [n.text for n in await store.list_parent_notes()] == ["729"]
        assert sorted(m.dedup_key for m in await store.list_messages()) == ["m29", "pending"]
        assert sorted(names(await all_events(store))) == ["home-recent.test", "recent.test"]
        hours = [r["start"] for r in await store.query_aggregates(0, now)]
        assert hours == [((now - 31 * DAY) // HOUR) * HOUR, ((now - 29 * DAY) // HOUR) * HOUR, ((now - 13 * DAY) // HOUR) * HOUR]
        assert [e.action for e in await store.list_audit()] == ["kept"]
        assert await store.get_session("live", now=now) is not None
        assert not any((await store.enforce_retention(now)).values())

    async def test_health(self, store: Store) -> None:
        health = await store.health()
        assert health.ok and f"schema version {LATEST_SCHEMA}" in health.detail and "node-a" in health.detail
        await store.close()
        assert not (await store.health()).ok

    # --- several nodes ----------------------------------------------------------------

    async def test_nodes_open_one_new_database_at_once(self, store_factory: StoreFactory) -> None:
        stores = await asyncio.gather(*(store_factory(f"node-{n}") for n in range(4)))
        for store in stores:
            health = await store.health()
            assert health.ok and f"schema version {LATEST_SCHEMA}" in health.detail

    async def test_two_nodes_write_concurrently(self, store_factory: StoreFactory) -> None:
        a = await store_factory("node-a")
        b = await store_factory("node-b")

        async def write(store: Store, prefix: str) -> None:
            for batch in range(10):
                await store.insert_events(
                    [make_event(T0 + batch, f"{prefix}{batch}-{i}.test") for i in range(50)])

        revisions, _, _ = await asyncio.gather(
            asyncio.gather(*(node.add_revision(f"v: {i}", node.node) for i in range(5) for node in (a, b))),
            write(a, "a"),
            write(b, "b"),
        )
        rows = await all_events(b)
        assert len(rows) == 1000
        assert {row["node"] for row in rows if row["name"].startswith("a")} == {"node-a"}
        assert {row["node"] for row in rows if row["name"].startswith("b")} == {"node-b"}
        assert sum(r["count"] for r in await a.query_aggregates(T0, T0 + HOUR)) == 1000
        assert sorted(revisions) == list(range(1, 11))
        assert await a.latest_revision_id() == await b.latest_revision_id() == 10

    async def test_nodes_importing_one_file_at_once_store_it_once(self, store_factory: StoreFactory) -> None:
        nodes = await asyncio.gather(*(store_factory(f"node-{n}") for n in range(4)))
        imported = await asyncio.gather(*(node.import_revision("groups: {}\n", "config-file") for node in nodes))
        assert [i for i in imported if i is not None] == [1]
        assert await nodes[0].latest_revision_id() == 1
        # A console edit, then the same file again: nothing new (it was imported already).
        await nodes[0].add_revision("groups: {a: {}}\n", "admin")
        assert await nodes[1].import_revision("groups: {}\n", "config-file") is None
        # The file changes to what is in force already: nothing new either.
        assert await nodes[2].import_revision("groups: {a: {}}\n", "config-file") is None
        assert await nodes[3].import_revision("groups: {b: {}}\n", "config-file") == 3

    # --- the sink ---------------------------------------------------------------------

    async def test_recorder_events_reach_the_store(self, store: Store) -> None:
        sink = StoreSink.for_store(store)
        recorder = Recorder(1000, [sink], batch_size=10, flush_interval=0.01)
        await recorder.start()
        for i in range(25):
            recorder.record(make_event(T0 + i, f"r{i}.test"))
        await recorder.close()
        assert names(await all_events(store)) == [f"r{i}.test" for i in reversed(range(25))]
        assert (sink.dropped, sink.failures, sink.pending) == (0, 0, 0)
        assert (await store.health()).ok  # the sink does not close the store

    async def test_sink_buffers_while_store_fails_and_recovers(
        self, store_factory: StoreFactory, outage: Callable[[], Any]
    ) -> None:
        store = await store_factory(busy_timeout=0.05, connect_timeout=2.0)
        await store.insert_events([make_event(T0, "before.test")])
        sink = StoreSink(store, probe_interval=0.02, chunk_size=7)
        with outage():
            for batch in range(3):
                await sink.write_batch([make_event(T0 + 1 + batch * 10 + i, f"e{batch}-{i}.test")
                                        for i in range(10)])
            assert sink.failing and sink.pending == 30 and sink.failures >= 1
            assert sink.last_error
        await wait_until(lambda: sink.pending == 0)
        assert not sink.failing and sink.dropped == 0
        await sink.write_batch([make_event(T0 + 100, "after.test")])
        expected = ["before.test"] + [f"e{b}-{i}.test" for b in range(3) for i in range(10)] + ["after.test"]
        assert names(await all_events(store)) == expected[::-1]
        await sink.close()

    async def test_sink_buffer_is_bounded(
        self, store_factory: StoreFactory, outage: Callable[[], Any]
    ) -> None:
        store = await store_factory(busy_timeout=0.05, connect_timeout=2.0)
        await store.health()
        sink = StoreSink(store, buffer_limit=25, probe_interval=0.02)
        with outage():
            for batch in range(3):
                await sink.write_batch([make_event(T0 + batch * 10 + i, f"e{batch}-{i}.test")
                                        for i in range(10)])
            assert (sink.pending, sink.dropped) == (25, 5)
        await wait_until(lambda: sink.pending == 0)
        stored = names(await all_events(store))
        assert stored[::-1] == [f"e{b}-{i}.test" for b in range(3) for i in range(10)][:25]
        assert sink.dropped == 5
        await sink.close()

    async def test_sink_close_while_store_fails_counts_the_loss(
        self, store_factory: StoreFactory, outage: Callable[[], Any]
    ) -> None:
        store = await store_factory(busy_timeout=0.05, connect_timeout=2.0)
        await store.health()
        sink = StoreSink(store, probe_interval=10.0)
        with outage():
            await sink.write_batch([make_event(T0 + i) for i in range(4)])
            await sink.close()  # must not raise
        assert (sink.pending, sink.dropped) == (0, 4)
        await sink.write_batch([make_event(T0)])  # after close: counted, not raised
        assert sink.dropped == 5
