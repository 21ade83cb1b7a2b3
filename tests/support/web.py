"""A console to test against: the real web app on 127.0.0.1 (ephemeral port), a real SQLite
store in the test's folder, the real policy engine built from a small config, and a small
stand-in for ``filterdns.server.control.Control`` that keeps to its contract without a
running DNS service.

Accounts made by ``make_console``: ada (admin), tom (teacher of 7b), tess (teacher of 8c),
vic (viewer) and pat (parent of 7b), all with the password ``PASSWORD``.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from filterdns.accounts.passwords import Passwords
from filterdns.config.loader import ConfigError, load_config
from filterdns.config.model import Config
from filterdns.identity.roster import Roster, parse_roster
from filterdns.metrics import Metrics
from filterdns.policy.home import group_at
from filterdns.policy.explanation import Explanation
from filterdns.policy.listsource import explanation_sources
from filterdns.resolver.events import QueryEvent
from filterdns.resolver.upstream import UpstreamHealth
from filterdns.server.active_policy import build_policy, lists_cache_dir
from filterdns.server.control import StoreChanges
from filterdns.store import Override, Store, StoreConfig, StoreSink, open_store
from filterdns.web import WebSettings, create_app

PASSWORD = "plum-kettle-harbour-42"
# Real argon2id, with parameters cheap enough for a test suite.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
HOSTILE_NAME = "<script>alert(1)</script>.example"

CONFIG_YAML = """
timezone: Europe/London
categories:
  video: {description: "Video sites", domains: [youtube.com, vimeo.com]}
  games: {description: "Online games", domains: [games.example]}
  adult: {description: "Adult content", domains: [adult.example]}
groups:
  7b: {networks: [10.0.7.0/24], block: [adult, games]}
  8c: {networks: [10.0.8.0/24], block: [adult, video]}
default_group: guests
essential_extra: [vimeo.com]   # listed as video: the list-health figures have a source to flag
"""

USERS = (
    ("ada", "admin", ()),
    ("tom", "teacher", ("7b",)),
    ("tess", "teacher", ("8c",)),
    ("vic", "viewer", ()),
    ("pat", "parent", ("7b",)),
)


class FakeControl(StoreChanges):
    """The Control contract over a real store and a real engine, minus the DNS service
    (what changes the store alone is Control's own code, ``StoreChanges``)."""

    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.store_sink = StoreSink(store)
        self.metrics = Metrics()
        self.policy = build_policy(config)
        self.policy_text = yaml.safe_dump({"groups": {g.name: {"block": list(g.block)} for g in config.policy.groups}})
        self.revision = 0
        self._overrides: list[Override] = []
        self._roster = Roster((), salt=config.node.identity.salt, unknown_group=config.policy.default_group)

    def groups(self):
        return self.config.policy.groups

    def roster(self) -> Roster:
        return self._roster

    async def import_roster(self, text: str, *, actor: str, source: str) -> int:
        entries = parse_roster(text, {group.name for group in self.config.policy.groups})
        self._roster = Roster(entries, salt=self.config.node.identity.salt, unknown_group=self.config.policy.default_group)
        await self.store.audit(actor, "roster.import", source, {"entries": len(entries)})
        return len(entries)

    def categories(self):
        return self.config.policy.categories

    def schedules(self):
        return self.config.policy.schedules

    def category_statuses(self):
        return list(self.policy.categories.statuses)

    def list_sizes(self) -> dict[str, int]:
        return {c.name: len(c.domains) for c in self.config.policy.categories}

    def list_health(self):
        return self.policy.categories.health

    def listing_sources(self, explanation):
        return explanation_sources(explanation.listings, self.category_statuses(), lists_cache_dir(self.config))

    def upstream_health(self) -> list[UpstreamHealth]:
        return [UpstreamHealth("quad9", True, 0, 12.5, 100, 1), UpstreamHealth("broken", False, 4, None, 9, 9)]

    def store_health(self) -> dict:
        return self.store_sink.health()

    def explain(
        self, name: str, *, group: str | None = None, client: str | None = None,
        mac: str | None = None, at: datetime | None = None, where: str = "school",
    ) -> Explanation:  # fmt: skip
        if group is not None:
            if group not in self.policy.engine.group_names:
                raise ValueError(f"no group '{group}'")
        else:
            group = self.policy.identifier.group_for(str(ipaddress.ip_address(client or "0.0.0.0")), mac)
        return self.policy.engine.explain(name, group_at(group, where), at)

    def policy_document(self) -> tuple[int, str]:
        return self.revision, self.policy_text

    def policy_data(self) -> dict:
        return yaml.safe_load(self.policy_text) or {}

    async def apply_policy(self, document: str | dict, *, author: str, comment: str = "") -> int:
        text = document if isinstance(document, str) else yaml.safe_dump(document)
        if not isinstance(yaml.safe_load(text), dict):
            raise ConfigError(["<policy>:1: the policy must be a mapping of keys"])
        self.revision = await self.store.add_revision(text, author, comment)
        self.policy_text = text
        await self.store.audit(author, "policy.change", f"revision {self.revision}", {"comment": comment})
        return self.revision

    async def rollback(self, revision_id: int, *, author: str) -> int:
        revision = await self.store.get_revision(revision_id)
        if revision is None:
            raise ValueError(f"no revision {revision_id}")
        return await self.apply_policy(revision.yaml_text, author=author, comment=f"rollback to {revision_id}")

    async def add_override(
        self, group: str, kind: str, *, domain: str = "", category: str = "", minutes: int, author: str
    ) -> Override:
        if group not in {g.name for g in self.config.policy.groups}:
            raise ValueError(f"no group '{group}'")
        if not 1 <= minutes <= 1440:
            raise ValueError("an override lasts 1 to 1440 minutes")
        if category and category not in {c.name for c in self.config.policy.categories}:
            raise ValueError(f"no category '{category}'")
        if kind == "allow" and category in self.config.policy.protected_categories:
            raise ValueError(f"{category} is protected")
        override = await self.store.add_override(
            group, kind, domain=domain, category=category, created_by=author, expires_at=time.time() + minutes * 60
        )
        await self.store.audit(author, "override.add", group, {"id": override.id})
        self._overrides = await self.store.list_active_overrides()
        return override

    async def revoke_override(self, override_id: int, *, author: str) -> bool:
        revoked = await self.store.revoke_override(override_id)
        if revoked:
            await self.store.audit(author, "override.revoke", str(override_id))
            self._overrides = await self.store.list_active_overrides()
        return revoked

    def active_overrides(self) -> list[Override]:
        now = time.time()
        return [o for o in self._overrides if o.expires_at > now and not o.revoked]


def event(name: str, group: str = "7b", *, client: str = "10.0.7.21", verdict: str = "allowed",
          category: str = "", t: float | None = None) -> QueryEvent:  # fmt: skip
    return QueryEvent(
        time=time.time() - 60 if t is None else t, client=client, group=group, name=name, qtype=1,
        verdict=verdict, reason=f"category:{category}" if category else "", category=category, rcode=0,
        latency_ms=2.0, answered_by="policy" if verdict == "blocked" else "cache", transport="udp",
    )  # fmt: skip


_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass
class Console:
    client: TestClient
    control: FakeControl
    passwords: Passwords

    @property
    def store(self) -> Store:
        return self.control.store

    @property
    def app(self):
        return self.client.server.app

    def session_cookie(self) -> str | None:
        cookie = self.client.session.cookie_jar.filter_cookies(self.client.make_url("/")).get("filterdns_session")
        return cookie.value if cookie else None

    async def csrf(self, path: str = "/") -> str:
        """The CSRF token a page of ``path`` carries for the current visitor."""
        response = await self.client.get(path)
        match = _CSRF_META.search(await response.text())
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    async def login(self, name: str, password: str = PASSWORD) -> ClientResponse:
        token = await self.csrf("/login")
        return await self.client.post(
            "/login", data={"username": name, "password": password, "csrf_token": token}, allow_redirects=False
        )

    async def logged_in(self, name: str) -> str:
        """Log in and return the session's CSRF token."""
        response = await self.login(name)
        assert response.status == 303, await response.text()
        return await self.csrf("/")

    async def page(self, path: str, status: int = 200) -> str:
        """The body of a GET of ``path``, which must answer ``status`` itself (redirects are
        not followed: a redirect to the login page is a failure to see, not a page)."""
        response = await self.client.get(path, allow_redirects=False)
        text = await response.text()
        assert response.status == status, (path, response.status, text[-800:])
        return text

    async def post(self, path: str, data: dict[str, Any], token: str) -> ClientResponse:
        return await self.client.post(path, data={**data, "csrf_token": token}, allow_redirects=False)

    async def add_user(self, name: str, role: str, groups: Sequence[str] = (), password: str = PASSWORD) -> None:
        await self.store.create_user(name, role, await self.passwords.hash(password), groups=groups)


@asynccontextmanager
async def fake_control(tmp_path: Path) -> AsyncIterator[FakeControl]:
    """A FakeControl over a fresh store in ``tmp_path``, closed afterwards."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(CONFIG_YAML)
    store = await open_store(StoreConfig(node="test-node"), tmp_path)
    try:
        yield FakeControl(load_config(config_path), store)
    finally:
        await store.close()


@asynccontextmanager
async def make_console(
    tmp_path: Path, *, setup_token: str | None = None, users: bool = True,
    settings: WebSettings = WebSettings(), secure_cookies: bool = False,
) -> AsyncIterator[Console]:  # fmt: skip
    async with fake_control(tmp_path) as control:
        passwords = Passwords(CHEAP_HASHER)
        app = create_app(
            control, setup_token=setup_token, secure_cookies=secure_cookies, settings=settings, passwords=passwords
        )
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        console = Console(client, control, passwords)
        try:
            if users:
                for name, role, groups in USERS:
                    await console.add_user(name, role, groups)
            yield console
        finally:
            await client.close()
