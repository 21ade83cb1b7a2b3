"""A group's policy compiled for the engine, and its effective categories while a given set
of schedule windows (and teachers' overrides) is in force.

``PolicyEngine`` (``policy/engine.py``) compiles each group once per policy into a
``GroupPolicy``, and recomputes every group's ``GroupState`` only when the open windows or
the overrides in force change; the helpers below find the allow/deny entries and overrides
that cover a name. Kept apart from the engine so that each file reads as one
thing: this one the data a decision is made from, the engine the order of the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from filterdns.config.model import BlockMode, SafeSearchConfig
from filterdns.policy.schedule import Schedule, Window

if TYPE_CHECKING:
    from filterdns.policy.decision import Decision, OverrideRule

# Allow/deny list ranks, best first.
GROUP_ALLOW, GLOBAL_ALLOW, GROUP_DENY, GLOBAL_DENY = range(4)


@dataclass(frozen=True, slots=True)
class Rule:
    schedule: Schedule
    block: int
    allow: int


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """A group's configuration compiled against the current category bits."""

    name: str
    always: int
    rules: tuple[Rule, ...]
    lists: dict[str, tuple[int, ...]]  # allow/deny entry -> its ranks
    safe_search: SafeSearchConfig
    block_mode: BlockMode
    bypass_protection: bool
    essential: bool
    default_allow: Decision  # shared by every name that matches nothing
    # A parent's limits on a pupil's home policy (policy/home.py): the schedule of the
    # bedtime ("" for none) and the end of a pause (unix time; 0 for none).
    bedtime: str = ""
    paused_until: float = 0.0


@dataclass(frozen=True, slots=True)
class GroupState:
    """A group's effective categories while the current set of windows is open."""

    blocked: int
    blocked_by: dict[int, Window]  # category bit -> window of the rule that blocked it
    allowed: int  # bits an open allow rule removed from the blocked set
    allowed_by: dict[int, Window]
    # Overrides in force: category bit -> override, and domain -> override.
    overridden: dict[int, OverrideRule]
    domain_overrides: dict[str, OverrideRule]
    # The verdict for "listed in this category", blocked or not, built once per state: the
    # same object serves every listed name (a million names must not mean a million
    # Decisions for the garbage collector to walk).
    by_category: dict[int, Decision] = field(default_factory=dict)
    # Why everything but essential services is blocked now (a parent's bedtime or pause), or "".
    curfew: str = ""


def category_bits(mask: int) -> list[int]:
    bits = []
    while mask:
        low = mask & -mask
        bits.append(low)
        mask ^= low
    return bits


def group_state(
    policy: GroupPolicy,
    active: Mapping[str, Window | None],
    overrides: Sequence[OverrideRule],
    bits: Mapping[str, int],
    protected: int,
    locked: int,
    now: float = 0.0,
) -> GroupState:
    """Apply the open rules in config order, so a later rule overrides an earlier one, then the
    group's overrides in force, which win over the rules for as long as they last; an allow
    override of a ``protected`` category is ignored (the console refuses to make one, and a
    stored one must not take effect either). ``locked`` categories are blocked whatever the
    rules and overrides say. At ``now`` a parent's pause or bedtime may hold (``curfew``)."""
    blocked = policy.always
    blocked_by: dict[int, Window] = {}
    allowed_by: dict[int, Window] = {}
    for rule in policy.rules:
        window = active[rule.schedule.name]
        if window is None:
            continue
        for bit in category_bits(rule.block & ~blocked):
            blocked_by[bit] = window
            allowed_by.pop(bit, None)
        blocked |= rule.block
        for bit in category_bits(rule.allow & blocked):
            allowed_by[bit] = window
            blocked_by.pop(bit, None)
        blocked &= ~rule.allow
    allowed = 0
    for bit in allowed_by:
        allowed |= bit
    overridden: dict[int, OverrideRule] = {}
    domain_overrides: dict[str, OverrideRule] = {}
    for override in overrides:
        if override.group != policy.name:
            continue
        if override.domain:
            domain_overrides[override.domain] = override
            continue
        bit = bits.get(override.category, 0)
        if not bit or (override.kind == "allow" and bit & protected):
            continue
        overridden[bit] = override
        blocked_by.pop(bit, None)
        allowed_by.pop(bit, None)
        if override.kind == "allow":
            blocked &= ~bit
            allowed |= bit
        else:
            blocked |= bit
            allowed &= ~bit
    for bit in category_bits(locked):
        blocked_by.pop(bit, None)
        allowed_by.pop(bit, None)
        overridden.pop(bit, None)
    curfew = ""
    if policy.paused_until > now:
        curfew = f"pause (until {datetime.fromtimestamp(policy.paused_until, timezone.utc):%H:%M UTC})"
    elif policy.bedtime and (window := active.get(policy.bedtime)) is not None:
        curfew = f"bedtime ({window.label})"
    return GroupState(
        blocked | locked, blocked_by, allowed & ~locked, allowed_by, overridden, domain_overrides, curfew=curfew
    )


def list_hits(lists: dict[str, tuple[int, ...]], name: str) -> list[tuple[int, str]]:
    """(rank, entry) for every allow/deny entry equal to ``name`` or a parent domain of it,
    best rank first and, within a rank, the most specific entry first."""
    hits: list[tuple[int, str]] = []
    if not lists:
        return hits
    suffix = name
    while True:
        ranks = lists.get(suffix)
        if ranks:
            hits.extend((rank, suffix) for rank in ranks)
        dot = suffix.find(".")
        if dot < 0:
            break
        suffix = suffix[dot + 1 :]
    hits.sort(key=lambda hit: hit[0])
    return hits


def domain_override(overrides: Mapping[str, OverrideRule], name: str) -> OverrideRule | None:
    """The override for ``name`` or its nearest parent domain."""
    suffix = name
    while True:
        override = overrides.get(suffix)
        if override is not None:
            return override
        dot = suffix.find(".")
        if dot < 0:
            return None
        suffix = suffix[dot + 1 :]


def list_name(rank: int, group: str) -> str:
    kind = "allow" if rank <= GLOBAL_ALLOW else "deny"
    return f"{group}'s {kind} list" if rank in (GROUP_ALLOW, GROUP_DENY) else f"the global {kind} list"


def on_list(name: str, entry: str, rank: int, group: str) -> str:
    where = list_name(rank, group)
    return f"{name} is on {where}" if entry == name else f"{name} is under {entry}, on {where}"
