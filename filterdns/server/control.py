"""What the web console may do to the running resolver, in one place.

The console never reaches into the pipeline, the engine or the database on its own: it calls
these methods, which validate, write the store (so that every resolver node sharing it
follows), write the audit log, and apply the change locally at once. Keeping that sequence
here means there is exactly one way to change policy, whoever asks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import yaml

from filterdns.config.loader import ConfigError, config_with_policy
from filterdns.config.sections.categories import LOCKED_CATEGORY
from filterdns.config.policytext import dump_policy
from filterdns.config.values import parse_mac
from filterdns.config.yamlnodes import NESTED_TOO_DEEPLY
from filterdns.config.model import CategoryConfig, Config, GroupConfig, ScheduleConfig
from filterdns.identity.roster import Roster, parse_roster, save_roster
from filterdns.metrics import Metrics
from filterdns.names import domain_name
from filterdns.policy.home import PLACES, Where, group_at
from filterdns.policy.categories import SourceStatus
from filterdns.policy import document
from filterdns.policy.listhealth import ListHealth
from filterdns.policy.listsource import explanation_sources
from filterdns.policy.explanation import Explanation
from filterdns.suffixes import is_public_suffix
from filterdns.resolver.upstream import UpstreamHealth
from filterdns.server.active_policy import list_sizes, lists_cache_dir
from filterdns.server.home_profiles import HomeProfiles
from filterdns.server.parent_notes import ParentNotes
from filterdns.store import Alert, OutboxMessage, Override, ReviewRequest, Store

if TYPE_CHECKING:
    from filterdns.reports.digest import DigestMail
    from filterdns.server.service import Service

MAX_OVERRIDE_MINUTES = 24 * 60


class StoreChanges:
    """The console's changes that touch the store alone (the audit log, alerts, the
    outbox), or are made of a policy edit (``policy_data`` then ``apply_policy``), each with
    its audit entry. A base of ``Control`` and of the tests' stand-in for it, which differ
    only in what they do to a running resolver."""

    store: Store
    config: Config

    # Provided by Control and by the stand-in: the policy in force, and saving a new revision.
    policy_data: Callable[[], dict]
    apply_policy: Callable[..., Awaitable[int]]

    async def fix_false_positive(
        self, name: str, *, fix: Literal["allow", "essential"], group: str | None, reason: str, author: str
    ) -> int:
        """An administrator's one-click fix for a name blocked by mistake, saved as a policy
        revision and audited with the required ``reason``: ``allow`` puts it on ``group``'s
        allow list (None: the global one); ``essential`` ("this is wrong in the list") adds
        it to ``essential_extra``, so no category list blocks it for anyone. Returns the
        revision id; ValueError or ConfigError (nothing saved) when it may not be done."""
        reason = " ".join(reason.split())[:500]
        if not reason:
            raise ValueError("say why this name should be reachable: the reason is kept with the change")
        name = domain_name(name)
        if is_public_suffix(name):
            raise ValueError(f"{name} is a public suffix: allowing it would allow every site registered under it")
        if group is not None and group not in {g.name for g in self.config.policy.groups}:
            raise ValueError(f"no group '{group}'")
        if fix == "essential":
            changed = document.add_essential(self.policy_data(), name)
            what = f"keep {name} reachable for everyone (wrong in the list)"
        else:
            changed = document.add_to_allow(self.policy_data(), name, group)
            what = f"allow {name} for {group or 'everyone'}"
        revision = await self.apply_policy(changed, author=author, comment=f"{what}: {reason}")
        await self.store.audit(
            author, f"fix.{fix}", name, {"group": group or "", "reason": reason, "revision": revision}
        )
        return revision

    @property
    def home_profiles(self) -> HomeProfiles:
        """Parents' settings for their children's take-home devices."""
        return HomeProfiles(self)

    @property
    def parent_notes(self) -> ParentNotes:
        """Parents' notes to the school and the staff's answers."""
        return ParentNotes(self)

    async def sync_home_settings(self) -> None:
        """Apply the home settings in the store now rather than at the next poll."""
        await self._service.sync.sync_home_settings()

    async def audit(self, actor: str, action: str, target: str = "", detail: Mapping[str, object] | None = None) -> None:
        """Record something done that changes nothing else (a login, an export, a share)."""
        await self.store.audit(actor, action, target, dict(detail or {}))

    async def acknowledge_alert(self, alert: Alert, *, by: str, note: str) -> Alert | None:
        """Acknowledge ``alert`` with a note; ``None`` if someone did already. The note stays
        with the alert: the audit log is readable by viewers, and a note can say more about
        a child than they should see."""
        done = await self.store.acknowledge_alert(alert.id, by=by, note=note)
        if done is not None:
            await self.store.audit(by, "alert.acknowledge", f"alert {alert.id}", {"rule": alert.rule})
        return done

    async def retry_message(self, message_id: int, *, actor: str) -> bool:
        """Send a failed outgoing message again; False if there is no such failed message."""
        message = await self.store.get_message(message_id)
        if message is None or not await self.store.retry_message(message_id):
            return False
        await self.store.audit(actor, "outbox.retry", str(message_id), _described(message))
        return True

    async def send_test_mail(self, to: str, *, actor: str) -> None:
        """Queue a mail to ``to`` that says delivery works."""
        await self.store.enqueue_message(
            dedup_key=f"test:{uuid.uuid4()}", channel="email", kind="test", recipient=to,
            subject="filterdns test mail",
            body_text=(f"This is a test mail from filterdns ({self.config.node.web.base_url}), sent by {actor} from the "
                       "console.\nIf you can read it, mail delivery works.\n"),
        )  # fmt: skip
        await self.store.audit(actor, "outbox.test", to)


    async def send_digest_copy(self, mail: "DigestMail", *, actor: str) -> None:
        """Queue a test copy of a weekly digest to ``mail.recipient`` (a member of staff),
        marked as a copy in its subject, so they see it as parents' mail programs will."""
        await self.store.enqueue_message(
            dedup_key=f"test:{uuid.uuid4()}", channel="email", kind="test", recipient=mail.recipient,
            subject=f"[Test copy] {mail.subject}", body_text=mail.text, body_html=mail.html,
            headers={"Content-Language": mail.language},
        )  # fmt: skip
        await self.store.audit(actor, "digest.test", mail.recipient, {"week": mail.week.start.isoformat()})


def _described(message: OutboxMessage) -> dict[str, str]:
    """What the audit log keeps about a message (not its body)."""
    return {"kind": message.kind, "channel": message.channel, "recipient": message.recipient,
            "last_error": message.last_error}  # fmt: skip


class Control(StoreChanges):
    def __init__(self, service: "Service"):
        self._service = service

    # -- reading ---------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self._service.store

    @property
    def metrics(self) -> Metrics:
        return self._service.metrics

    @property
    def config(self) -> Config:
        return self._service.config

    def groups(self) -> tuple[GroupConfig, ...]:
        return self.config.policy.groups

    def roster(self) -> Roster:
        """The roster in use by the encrypted DNS listeners (empty when they are off)."""
        return self._service.encrypted.roster

    async def import_roster(self, text: str, *, actor: str, source: str) -> int:
        """Replace the roster with CSV ``text``, checked against the groups in force, and use
        it at once here (other workers within seconds). Raises ``RosterError`` listing every
        problem; nothing changes then. Returns the number of entries."""
        entries = parse_roster(text, {group.name for group in self.config.policy.groups})
        await asyncio.to_thread(save_roster, self.config.node.roster_path, entries)
        await self.audit(actor, "roster.import", source, {"entries": len(entries)})
        await self._service.encrypted.refresh_roster()
        return len(entries)

    def categories(self) -> tuple[CategoryConfig, ...]:
        return self.config.policy.categories

    def schedules(self) -> tuple[ScheduleConfig, ...]:
        return self.config.policy.schedules

    def category_statuses(self) -> list[SourceStatus]:
        return list(self._service.active.require().categories.statuses)

    def list_health(self) -> ListHealth:
        return self._service.active.require().categories.health

    def list_sizes(self) -> dict[str, int]:
        return list_sizes(self._service.active.require().categories)

    def upstream_health(self) -> list[UpstreamHealth]:
        return self._service.upstream.health()

    def store_health(self) -> dict:
        return self._service.store_sink.health()

    def explain(
        self,
        name: str,
        *,
        group: str | None = None,
        client: str | None = None,
        mac: str | None = None,
        at: datetime | None = None,
        where: Where = "school",
    ) -> Explanation:
        """Why ``name`` gets its verdict for a group (or the group of a client address/MAC),
        at school or (``where="home"``) on a take-home device at home."""
        if where not in PLACES:
            raise ValueError(f"where must be one of {', '.join(PLACES)}")
        policy = self._service.active.require()
        if group is not None:
            if group not in policy.engine.group_names:
                raise ValueError(f"no group '{group}'")
        else:
            address = str(ipaddress.ip_address(client)) if client else "0.0.0.0"
            group = policy.identifier.group_for(address, parse_mac(mac) if mac else None)
        return policy.engine.explain(name, group_at(group, where), at)

    def listing_sources(self, explanation: Explanation) -> dict[str, list[str]]:
        """Category -> the labels of its sources that list the explained name (reads the
        list files: for staff looking at one name, not for every query)."""
        return explanation_sources(explanation.listings, self.category_statuses(), lists_cache_dir(self.config))

    def policy_document(self) -> tuple[int, str]:
        """(revision id, YAML text) of the policy in force; (0, "") before the start."""
        current = self._service.sync.current
        return (current.revision_id, current.text) if current is not None else (0, "")

    def policy_data(self) -> dict:
        return yaml.safe_load(self.policy_document()[1]) or {}

    def active_overrides(self) -> list[Override]:
        now = time.time()
        return [o for o in self._service.active.overrides if o.expires_at > now and not o.revoked]

    # -- changing --------------------------------------------------------------------------

    async def apply_policy(self, document: str | dict, *, author: str, comment: str = "") -> int:
        """Validate, store as a new revision, audit, apply here at once; returns the revision id.
        Raises ``ConfigError`` (with ``problems``) and changes nothing when it is invalid."""
        try:
            text = document if isinstance(document, str) else dump_policy(document)
        except RecursionError:  # a JSON document from the API, nested hundreds deep
            raise ConfigError([f"policy: {NESTED_TOO_DEEPLY}"]) from None
        # The loader first: it refuses oversized documents and YAML aliases before anything
        # parses the text into lists that a check would walk.
        config = config_with_policy(self.config, text)
        self._refuse_locked_allows(yaml.safe_load(text) or {})
        self._refuse_unlocking(config)
        previous_id, previous_text = self.policy_document()
        revision_id = await self._service.sync.propose(text, author=author, comment=comment)
        await self.store.audit(
            author,
            "policy.change",
            f"revision {revision_id}",
            {"comment": comment, "previous": previous_id, "changed": previous_text != text},
        )
        return revision_id

    async def rollback(self, revision_id: int, *, author: str) -> int:
        revision = await self.store.get_revision(revision_id)
        if revision is None:
            raise ValueError(f"no revision {revision_id}")
        new_id = await self._service.sync.propose(
            revision.yaml_text, author=author, comment=f"rollback to revision {revision_id}"
        )
        await self.store.audit(author, "policy.rollback", f"revision {new_id}", {"to": revision_id})
        return new_id

    async def add_override(
        self,
        group: str,
        kind: Literal["allow", "block"],
        *,
        domain: str = "",
        category: str = "",
        minutes: int,
        author: str,
    ) -> Override:
        """A teacher's time-boxed exception, e.g. YouTube for 7B for this lesson."""
        config = self.config
        if group not in {g.name for g in config.policy.groups}:
            raise ValueError(f"no group '{group}'")
        if kind not in ("allow", "block"):
            raise ValueError("an override either allows or blocks")
        if bool(domain) == bool(category):
            raise ValueError("an override names one domain or one category")
        if not 1 <= minutes <= MAX_OVERRIDE_MINUTES:
            raise ValueError(f"an override lasts 1 to {MAX_OVERRIDE_MINUTES} minutes")
        protected = set(config.policy.protected_categories)
        if category:
            if category not in {c.name for c in config.policy.categories}:
                raise ValueError(f"no category '{category}'")
            if kind == "allow" and category in {c.name for c in config.policy.categories if c.locked}:
                raise ValueError(f"{category} is locked: it is blocked for everyone and nobody can allow it")
            if kind == "allow" and category in protected:
                raise ValueError(f"{category} is protected: only an administrator's policy change can allow it")
        else:
            domain = domain_name(domain)
            if kind == "allow":
                self._refuse_unliftable(domain)
        now = time.time()
        override = await self.store.add_override(
            group, kind, domain=domain, category=category, created_by=author, expires_at=now + minutes * 60, now=now
        )
        await self.store.audit(
            author,
            "override.add",
            group,
            {"kind": kind, "domain": domain, "category": category, "minutes": minutes, "id": override.id},
        )
        await self._service.sync.sync_overrides()
        return override

    async def revoke_override(self, override_id: int, *, author: str) -> bool:
        revoked = await self.store.revoke_override(override_id)
        if revoked:
            await self.store.audit(author, "override.revoke", str(override_id))
            await self._service.sync.sync_overrides()
        return revoked

    async def request_review(self, name: str, client: str, reason: str) -> ReviewRequest:
        """From the block page: a pupil asks for a blocked site to be looked at again. A public
        suffix (``Host: com``) is refused: no approval could ever allow it."""
        name = domain_name(name)
        if is_public_suffix(name):
            raise ValueError(f"{name} is a public suffix, not a site")
        locked = self._service.active.require().engine.locked_refusal(name)
        if locked:
            raise ValueError(locked)
        group = self._service.active.require().identifier.group_for(str(ipaddress.ip_address(client)))
        request = await self.store.add_review_request(name, group, client, reason[:500])
        await self.store.audit(client, "review.request", name, {"group": group, "id": request.id})
        return request

    async def decide_review(
        self, request_id: int, decision: Literal["approved", "declined"], *, author: str
    ) -> ReviewRequest:
        pending = {r.id: r for r in await self.store.list_review_requests(status="pending", limit=10_000)}
        request = pending.get(request_id)
        if request is None:
            raise ValueError(f"no pending review request {request_id}")
        if decision == "approved":
            self._refuse_unliftable(request.name)
            # The allow rule first: if it cannot be stored, the request stays pending.
            document = self.policy_data()
            group = document.setdefault("groups", {}).setdefault(request.group, {})
            allow = group.setdefault("allow", [])
            if request.name not in allow:
                allow.append(request.name)
                await self.apply_policy(
                    document, author=author, comment=f"review request {request_id}: allow {request.name} for {request.group}"
                )
        decided = await self.store.decide_review_request(request_id, decision, author)
        if decided is None:
            raise ValueError(f"no pending review request {request_id}")
        await self.store.audit(author, f"review.{decision}", request.name, {"group": request.group, "id": request_id})
        return decided


    def _refuse_unliftable(self, name: str) -> None:
        """ValueError when an allow for ``name`` could lift what only an administrator's
        policy change may (see :meth:`PolicyEngine.lift_refusal`)."""
        engine = self._service.active.require().engine
        locked = engine.locked_refusal(name)
        if locked:
            raise ValueError(locked)
        refusal = engine.lift_refusal(name)
        if refusal:
            raise ValueError(f"{refusal}; only an administrator can allow it, with an allow list entry")

    def _refuse_unlocking(self, new: Config) -> None:
        """ConfigError when a policy revision would unlock or remove a category locked now."""
        locked_now = {category.name for category in self.config.policy.categories if category.locked}
        locked_after = {category.name for category in new.policy.categories if category.locked}
        problems = [f"categories.{name}: {LOCKED_CATEGORY.format(name=name)}" for name in sorted(locked_now - locked_after)]
        if problems:
            raise ConfigError(problems)

    def _refuse_locked_allows(self, document: dict) -> None:
        """ConfigError when the policy ``document`` allows, or calls essential, a name listed
        in a locked category: the engine would block it anyway, and a change that claims to
        reach illegal content must not be saved as if it did."""
        engine = self._service.active.require().engine
        groups = document.get("groups") or {}
        entries = [("allow", name) for name in document.get("allow") or ()]
        entries += [("essential_extra", name) for name in document.get("essential_extra") or ()]
        entries += [
            (f"groups.{group}.allow", name) for group, body in groups.items() for name in (body or {}).get("allow") or ()
        ]
        problems = [
            f"{key}: {refusal}" for key, name in entries if (refusal := engine.locked_refusal(str(name).strip().lower()))
        ]
        if problems:
            raise ConfigError(problems)


__all__ = ["Control", "ConfigError"]
