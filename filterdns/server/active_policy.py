"""The policy in force on this node, and how it is replaced.

A new policy (lists, groups, schedules) is built completely, off the event loop, and then
swapped in with plain assignments between two packets: queries keep flowing and none is
answered by a half-built policy. Policy revisions, SIGHUP, list downloads and teachers'
overrides all come through here, so there is one way a policy changes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filterdns.config.model import Config
from filterdns.metrics import Metrics
from filterdns.policy.build_process import build_in_child
from filterdns.policy.categories import (
    CategorySet,
    ListStamp,
    build_category_set,
    local_list_stamp,
    release_free_memory,
)
from filterdns.policy.engine import PolicyEngine
from filterdns.policy.groups import GroupResolver
from filterdns.policy.home import HomeSettings, school_networks
from filterdns.resolver.access import NetworkSet
from filterdns.resolver.blocking import BlockResponder
from filterdns.resolver.identify import ClientIdentifier
from filterdns.resolver.pipeline import QueryPipeline
from filterdns.server.policy_sync import PolicyVersion, override_rules
from filterdns.store import Override

log = logging.getLogger("filterdns.service")


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything a reload replaces, built before it is swapped in."""

    categories: CategorySet
    engine: PolicyEngine
    blocker: BlockResponder
    identifier: ClientIdentifier


def build_policy(config: Config, categories: CategorySet | None = None) -> Policy:
    """Load the lists (unless ``categories`` are given: a policy edit that leaves them alone
    reuses the index) and compile groups and schedules. Slow for big lists: run in a thread."""
    if categories is None:
        categories = build_category_set(
            config.policy.categories, lists_cache_dir(config), config.node.folder, config.node.list_file_roots, config.policy.essential_names
        )
    return Policy(
        categories=categories,
        engine=PolicyEngine(config, categories),
        blocker=BlockResponder(config),
        identifier=ClientIdentifier(
            GroupResolver(config.policy.groups, config.policy.default_group),
            NetworkSet(config.policy.trusted_forwarders),
            NetworkSet(networks) if (networks := school_networks(config.policy)) else None,
        ),
    )


def lists_cache_dir(config: Config) -> Path:
    """Where downloaded lists are kept."""
    return config.node.data_dir / "lists"


def list_sizes(categories: CategorySet) -> dict[str, int]:
    """Listed domains per category, for the console and the metrics."""
    sizes: dict[str, int] = {name: 0 for name in categories.names}
    for status in categories.statuses:
        sizes[status.category] = sizes.get(status.category, 0) + status.entries
    return sizes


class ActivePolicy:
    """The configuration and policy in force, the teachers' overrides on top, and the
    pipeline that answers with them. ``on_config`` hears of every new configuration."""

    def __init__(self, config: Config, metrics: Metrics, on_config: Callable[[Config], None]) -> None:
        self.config = config
        self.policy: Policy | None = None
        self.overrides: list[Override] = []
        self.home_settings: dict[str, HomeSettings] = {}
        self._metrics = metrics
        self._on_config = on_config
        self._pipeline: QueryPipeline | None = None
        self._lock = asyncio.Lock()
        self._lists_stamp: ListStamp = ()  # the local list files the current index was built from

    def require(self) -> Policy:
        if self.policy is None:
            raise RuntimeError("the service has not started")
        return self.policy

    async def first(self, config: Config) -> Policy:
        """Build the policy to start with; ``answer_with`` hands it to the pipeline later."""
        self.config = config
        self.policy = await self._build(config)
        self._announce(self.policy)
        return self.policy

    def answer_with(self, pipeline: QueryPipeline) -> None:
        """From now on every new policy is swapped into ``pipeline``."""
        self._pipeline = pipeline

    async def activate(self, version: PolicyVersion) -> None:
        """Build the policy for ``version`` off the event loop, then swap it in. The list
        index is reused when neither the categories nor the local list files changed."""
        async with self._lock:
            same_lists = (
                self.policy is not None
                and version.config.policy.categories == self.config.policy.categories
                and version.config.policy.essential == self.config.policy.essential  # list health names them
                and local_list_stamp(version.config.policy.categories, version.config.node.folder) == self._lists_stamp
            )
            categories = self.policy.categories if same_lists and self.policy else None
            policy = await self._build(version.config, categories)
            self.config = version.config
            self._swap(policy)
            self._on_config(version.config)

    async def rebuild_lists(self) -> None:
        """Rebuild the category index from the lists on disk (after a download)."""
        async with self._lock:
            self._swap(await self._build(self.config))

    def apply_home_settings(self, settings: dict[str, HomeSettings]) -> None:
        """The parents' settings for their children's take-home devices (pupil -> settings)."""
        self.home_settings = settings
        if self.policy is not None:
            self._use_home_settings(self.policy)

    def _use_home_settings(self, policy: Policy) -> None:
        policy.engine.set_home_settings(self.home_settings)
        policy.identifier.home_pupils = frozenset(self.home_settings)

    def apply_overrides(self, overrides: list[Override]) -> None:
        self.overrides = overrides
        if self.policy is not None:
            self.policy.engine.set_overrides(override_rules(overrides))

    async def _build(self, config: Config, categories: CategorySet | None = None) -> Policy:
        """Build a policy without stalling DNS: the lists are parsed and indexed in a child
        process (see ``build_process``); only the small rest is built in a thread."""
        if categories is None and config.policy.categories:
            self._lists_stamp = local_list_stamp(config.policy.categories, config.node.folder)
            categories = await build_in_child(
                config.policy.categories,
                lists_cache_dir(config),
                config.node.folder,
                config.node.list_file_roots,
                config.policy.essential_names,
                log_level=logging.getLevelName(logging.getLogger().level).lower(),
                log_format=config.node.log.format,
            )
        policy = await asyncio.to_thread(build_policy, config, categories)
        # What is built at load time lives until the next reload: keep the garbage collector's
        # full passes from walking it (they caused 100+ ms pauses with large lists).
        gc.collect()
        gc.freeze()
        return policy

    def _swap(self, policy: Policy) -> None:
        policy.engine.set_overrides(override_rules(self.overrides))
        self._use_home_settings(policy)
        if self._pipeline is not None:
            self._pipeline.replace_policy(policy.engine, policy.blocker, policy.identifier)
            self._pipeline.rate_limiter.set_exempt(NetworkSet(self.config.policy.trusted_forwarders))
        self.policy = policy
        self._announce(policy)
        release_free_memory()

    def _announce(self, policy: Policy) -> None:
        self._metrics.set_list_sizes(list_sizes(policy.categories))
        log.info(
            "policy ready: %d groups, %d categories, %d listed domains",
            len(policy.engine.group_names),
            len(policy.categories.names),
            len(policy.categories.index),
        )
