"""Policy as revisions in the store, followed by every resolver node.

The policy (groups, schedules, categories, allow/deny lists...) lives in the store as numbered
revisions. config.yaml seeds it: when the file's policy differs from the last one imported
from it and from the newest revision, it becomes a new revision (and the audit log says so),
atomically, so nodes starting together import it once. The console adds revisions
too. Every node polls the newest revision id twice a second and applies a new one as soon as
it appears, so an edit on one node's console reaches all of them within a second.

When the store cannot be reached the node keeps the policy it has (at start: the file's), and
catches up by itself when the store returns. DNS never waits for the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from filterdns.config.loader import EMBEDDED_POLICY, ConfigError, config_with_policy
from filterdns.config.policytext import policy_document
from filterdns.config.model import Config
from filterdns.policy.engine import OverrideRule
from filterdns.policy.home import HomeSettings
from filterdns.store import Override, Store
from filterdns.store.outage import OutageLog

log = logging.getLogger("filterdns.policy")

POLL_INTERVAL = 0.5
FILE_AUTHOR = "config-file"


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    config: Config
    text: str
    revision_id: int  # 0: not (yet) in the store


Activate = Callable[[PolicyVersion], Awaitable[None]]


class PolicySync:
    def __init__(
        self, store: Store, base: Config, activate: Activate, apply_overrides: Callable[[list[Override]], None],
        apply_home: Callable[[dict[str, HomeSettings]], None] | None = None,
    ):
        self._store = store
        self._apply_home = apply_home
        self._home_seen: tuple = ()
        self._base = base
        self._activate = activate
        self._apply_overrides = apply_overrides
        self.current: PolicyVersion | None = None
        self._imported = False
        self._overrides_seen: tuple = ()

    def file_text(self) -> str:
        source = self._base.node.source
        return policy_document(source) if source is not None else EMBEDDED_POLICY

    async def initial(self) -> PolicyVersion:
        """The policy to start with: the store's newest revision (after importing the file's
        policy if it changed), or the file's own policy while the store is unreachable."""
        text = self.file_text()
        try:
            version = await self._import_and_load()
        except Exception as error:  # any store failure: start from the file, catch up later
            log.warning("the store is not available (%s); starting with the policy in the config file", error)
            version = PolicyVersion(config_with_policy(self._base, text, _label(self._base)), text, 0)
        self.current = version
        return version

    async def _import_and_load(self) -> PolicyVersion:
        # YAML work runs in a thread: the event loop keeps answering DNS meanwhile.
        text = await asyncio.to_thread(self.file_text)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        where = str(self._base.node.source) if self._base.node.source else "the embedded default"
        # Imported only if it differs from the newest revision and from the file's last
        # import, in one atomic step: nodes starting together import it once.
        revision_id = await self._store.import_revision(text, FILE_AUTHOR, f"imported from {where} ({digest})")
        if revision_id is not None:
            await self._store.audit(FILE_AUTHOR, "policy.import", f"revision {revision_id}", {"file": where})
            log.info("the policy in %s changed: imported as revision %d", where, revision_id)
        self._imported = True
        latest = await self._store.latest_revision()
        assert latest is not None
        config = await asyncio.to_thread(config_with_policy, self._base, latest.yaml_text, f"revision {latest.id}")
        return PolicyVersion(config, latest.yaml_text, latest.id)

    async def propose(self, text: str, *, author: str, comment: str) -> int:
        """Validate a new policy document, store it as a revision and apply it here now."""
        config = await asyncio.to_thread(config_with_policy, self._base, text)  # ConfigError: nothing stored
        revision_id = await self._store.add_revision(text, author, comment)
        await self._switch(PolicyVersion(config, text, revision_id))
        return revision_id

    async def reload_base(self, base: Config) -> None:
        """After SIGHUP: a new config file. Its policy is imported if it changed."""
        self._base = base
        version = await self._import_and_load()
        await self._switch(version)

    async def run(self) -> None:
        """Follow the store: new revisions and overrides, twice a second, forever."""
        outage = OutageLog(log, self._store.outage)
        while True:
            try:
                if not self._imported:
                    await self._switch(await self._import_and_load())
                latest_id = await self._store.latest_revision_id()
                if self.current is None or latest_id != self.current.revision_id:
                    revision = await self._store.get_revision(latest_id)
                    if revision is not None:
                        await self._apply_revision(revision.id, revision.yaml_text)
                await self.sync_overrides()
                await self.sync_home_settings()
                outage.recovered("the store is reachable again; policy and overrides are in sync")
            except Exception as error:  # whatever it is, DNS goes on with the policy it has
                outage.failed("cannot follow the store (%s); keeping the current policy", error)
            await asyncio.sleep(POLL_INTERVAL)

    async def _apply_revision(self, revision_id: int, text: str) -> None:
        try:
            config = await asyncio.to_thread(config_with_policy, self._base, text, f"revision {revision_id}")
        except ConfigError as error:
            # Another node (perhaps a newer version) stored something this node cannot read.
            log.error("revision %d is not valid here, keeping revision %s:\n%s", revision_id, self.current and self.current.revision_id, error)
            self.current = PolicyVersion(self.current.config, self.current.text, revision_id) if self.current else None
            return
        await self._switch(PolicyVersion(config, text, revision_id))
        log.info("applied policy revision %d", revision_id)

    async def _switch(self, version: PolicyVersion) -> None:
        await self._activate(version)
        self.current = version

    async def sync_overrides(self) -> None:
        overrides = await self._store.list_active_overrides()
        seen = tuple((o.id, o.expires_at, o.revoked) for o in overrides)
        if seen != self._overrides_seen:
            self._overrides_seen = seen
            self._apply_overrides(overrides)


    async def sync_home_settings(self) -> None:
        """The parents' home settings in force (newest revision per pupil), when they changed."""
        if self._apply_home is None:
            return
        current = await self._store.current_home_settings()
        seen = tuple(sorted(revision.id for revision in current.values()))
        if seen != self._home_seen:
            self._home_seen = seen
            self._apply_home({pupil: HomeSettings.from_json(r.settings) for pupil, r in current.items()})


def override_rules(overrides: list[Override]) -> list[OverrideRule]:
    return [
        OverrideRule(o.group, o.kind, o.domain, o.category, o.created_by, o.expires_at)
        for o in overrides
        if not o.revoked
    ]


def _label(config: Config) -> str:
    return str(config.node.source) if config.node.source is not None else "embedded default"
