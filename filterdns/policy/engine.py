"""The filtering decision: given a group and a name, allow, block or rewrite, and say why.

Order of precedence (first match wins):

L. locked categories (illegal content): blocked for every group at every hour; nothing below,
   no allow list, override, review approval or essential entry, reaches them;
0. a teacher's override for a domain: a block always applies; an allow applies unless the
   name is a bypass name, on the global deny list, or in a protected category blocked now
   (those stay as the rules below decide: an override is a teacher's, the protections are
   the school's). A teacher's category allow never lifts a protected category either;
1. bypass protection: names that switch browsers and phones to their own encrypted DNS get
   the answer that keeps it off. It comes before the allow lists because an allow entry for
   a vendor (``icloud.com``) must not switch on its relay (``mask.icloud.com``), and before
   the deny lists because only its answer (NXDOMAIN for Firefox's canary, not ``0.0.0.0``)
   keeps the bypass off; where a group turns it off, the deny lists still apply;
2. the group's allow list, then the global allow list (they win over everything below, and
   the decision says which category they overrode);
3. the group's deny list, then the global deny list;
4. categories: the name's category mask against the group's *effective* blocked mask, which
   is the always-blocked categories changed by the scheduled rules whose window is open now.
   An essential service (Teams, Classroom, Windows Update: ``Config.essential``) stays
   reachable for groups that keep ``essential`` on, unless a list names a host *below* its
   entry; the check runs only for names a category blocks, so it costs other names nothing;
5. safe search rewrites (essential names included);
6. otherwise allow.

The effective masks only change when a schedule window opens or closes, so they are computed
for all groups at once and kept until the earliest upcoming window change. Decisions are
cached per (group, name) and the cache is dropped whenever an effective mask changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Protocol

from filterdns.config.model import Config, EssentialEntry, GroupConfig
from filterdns.names import is_at_or_below, normalize_domain
from filterdns.policy.decision import Decision, OverrideRule
from filterdns.policy.explanation import Explanation
from filterdns.policy.groupstate import (
    GLOBAL_ALLOW,
    GLOBAL_DENY,
    GROUP_ALLOW,
    GROUP_DENY,
    GroupPolicy,
    GroupState,
    Rule,
    domain_override,
    group_state,
    list_hits,
    list_name,
    on_list,
)
from filterdns.policy.home import PUPIL_SEPARATOR, HomeSettings, home_config, home_group, is_home, pupil_config
from filterdns.policy.safesearch import safe_search_target
from filterdns.suffixes import is_public_suffix
from filterdns.policy.schedule import LOOKAHEAD, Schedule, Window
from filterdns.wire.rcodes import RCODE_NOERROR, RCODE_NXDOMAIN

# Names whose answer decides whether a device bypasses this resolver: (rcode, why).
# NOERROR with no records is NODATA.
BYPASS_NAMES: dict[str, tuple[int, str]] = {
    "use-application-dns.net": (
        RCODE_NXDOMAIN,
        "Firefox keeps its own DNS-over-HTTPS off when this name does not exist",
    ),
    "mask.icloud.com": (RCODE_NXDOMAIN, "iCloud Private Relay stays off when this name does not exist"),
    "mask-h2.icloud.com": (RCODE_NXDOMAIN, "iCloud Private Relay stays off when this name does not exist"),
    "_dns.resolver.arpa": (
        RCODE_NOERROR,
        "an empty answer stops clients discovering an encrypted resolver to use instead (RFC 9462)",
    ),
}

_NEVER = float("-inf")


class CategoryIndex(Protocol):
    def match(self, name: str) -> int:
        """Bitmask of the categories listing ``name`` or a parent domain."""
        ...

    def explain(self, name: str) -> list[tuple[str, int]]:
        """The listed suffixes of ``name`` with their category masks."""
        ...

    def listed_below(self, name: str, mask: int, limit: int = 5) -> list[str]:
        """Up to ``limit`` listed names below ``name`` that block a category of ``mask``."""
        ...


class CategorySet(Protocol):
    """What the engine needs from the category lists: category ``i`` is bit ``i``."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def index(self) -> CategoryIndex: ...

    @property
    def descriptions(self) -> dict[str, str]: ...

    @property
    def essential_hits(self) -> Mapping[str, Sequence[tuple[str, str]]]:
        """Essential name -> (category, source label) of every source that lists it or a parent."""
        ...


def _now_utc() -> datetime:
    return datetime.now(timezone.utc)


class PolicyEngine:
    """Decides queries for all groups; see the module docstring for the order of rules."""

    def __init__(
        self,
        config: Config,
        categories: CategorySet,
        *,
        clock: Callable[[], datetime] = _now_utc,
        decision_cache_size: int = 65_536,
    ):
        self._config = config
        self._clock = clock
        # The hot path only needs "has a window boundary passed?", which a float answers in a
        # tenth of the time datetime.now() takes; a datetime is built only when it has.
        self._timestamp: Callable[[], float] = time.time if clock is _now_utc else lambda: clock().timestamp()
        self._cache_size = decision_cache_size
        self._decisions: dict[tuple[str, str], Decision] = {}
        # Counts every change that may alter a decision, so callers that remember answers
        # (the pipeline's answer memo) know when to forget them.
        self.generation = 0
        self._overrides: tuple[OverrideRule, ...] = ()
        self._home_settings: dict[str, HomeSettings] = {}
        used = {rule.schedule for group in config.policy.groups for rule in group.rules}
        self._schedules = {s.name: Schedule(s) for s in config.policy.schedules if s.name in used}
        self.replace_categories(categories)

    @property
    def group_names(self) -> tuple[str, ...]:
        """Every group with a policy: the configured ones and the default group (not their
        home policies, which nobody sets overrides for or picks by name)."""
        return tuple(name for name in self._policies if not is_home(name))

    def replace_categories(self, categories: CategorySet) -> None:
        """Switch to a new category index (after a list refresh) in one step."""
        bits = {name: 1 << i for i, name in enumerate(categories.names)}
        # Priority is config order; categories the config does not name come last.
        ordered = list(dict.fromkeys([c.name for c in self._config.policy.categories if c.name in bits] + list(bits)))
        groups = {group.name: group for group in self._config.policy.groups}
        groups.setdefault(self._config.policy.default_group, GroupConfig(self._config.policy.default_group))
        for group in list(groups.values()):  # each group's policy at home (policy/home.py)
            home = home_config(group, self._config.policy)
            groups[home.name] = home
        policies = {name: self._compile(group, bits) for name, group in groups.items()}
        locked = 0
        for category in self._config.policy.categories:
            if category.locked:
                locked |= bits.get(category.name, 0)
        protected = locked
        for name in self._config.policy.protected_categories:
            protected |= bits.get(name, 0)
        # Plain assignments with no await between them: no query sees a half-swapped state.
        self._bits = bits
        self._protected = protected
        self._locked = locked
        self._essential = {entry.name: entry for entry in reversed(self._config.policy.essential)}
        self._essential_hits = categories.essential_hits
        self._categories = categories
        self._priority = tuple((bits[name], name) for name in ordered)
        self._policies = policies
        self._group_configs = groups
        self._states: dict[str, GroupState] = {}
        self._valid_from = self._valid_until = _NEVER
        self._decisions.clear()
        self.generation += 1

    def set_overrides(self, overrides: Iterable[OverrideRule]) -> None:
        """Replace the overrides; each stops applying by itself at its ``expires_at``."""
        self._overrides = tuple(overrides)
        self._valid_from = self._valid_until = _NEVER  # the next decision recomputes the states
        self.generation += 1

    def set_home_settings(self, settings: Mapping[str, HomeSettings]) -> None:
        """Replace the parents' settings (pupil -> settings). Each pupil's own home policy is
        compiled again the next time it is asked for (``_policy``)."""
        self._home_settings = dict(settings)
        self._policies = {name: p for name, p in self._policies.items() if PUPIL_SEPARATOR not in name}
        self._schedules = {name: s for name, s in self._schedules.items() if PUPIL_SEPARATOR not in name}
        self._valid_from = self._valid_until = _NEVER
        self._decisions.clear()
        self.generation += 1

    def decide(self, group: str, name: str, qtype: int) -> Decision:
        """The decision for ``name`` (lower case, no trailing dot) asked by ``group``.

        ``qtype`` is part of the query path's interface but no rule depends on it (a CNAME or
        a block applies to every type; the answerer turns ``block_mode`` into A/AAAA/NODATA),
        so it is not part of the cache key. An unknown group gets the default group's policy."""
        now = self._timestamp()
        if not (self._valid_from <= now < self._valid_until):
            self._refresh(datetime.fromtimestamp(now, timezone.utc))
        key = (group, name)
        decision = self._decisions.get(key)
        if decision is None:
            policy = self._policy(group)
            state = self._states.get(policy.name)
            if state is None:  # a pupil's home policy, compiled just now
                self._refresh(datetime.fromtimestamp(now, timezone.utc))
                state = self._states[policy.name]
            decision = self._evaluate(policy, state, name)
            if len(self._decisions) >= self._cache_size:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def lift_refusal(self, name: str) -> str:
        """Why nobody but an administrator's policy change may allow ``name`` and every name
        below it (a teacher's override, a review request or its approval), or "" when they
        may. ``name`` is normalised (lower case, ASCII, no trailing dot).

        The check covers the names *below* ``name`` because an allow covers them all: ``com``
        or a domain with an adult site under it would lift a protected category otherwise."""
        if is_public_suffix(name):
            return f"{name} is a public suffix: allowing it would allow every site registered under it"
        locked = self.locked_refusal(name)
        if locked:
            return locked
        index = self._categories.index
        listed = index.match(name) & self._protected
        if listed:
            return f"{name} is listed as {', '.join(self._names(listed))}, which is protected"
        below = index.listed_below(name, self._protected, limit=1)
        if below:
            categories = ", ".join(self._names(index.match(below[0]) & self._protected))
            return f"{name} has sites in a protected category below it ({below[0]} is listed as {categories})"
        for bypass in BYPASS_NAMES:
            if is_at_or_below(bypass, name):
                return f"{name} covers {bypass}, which bypass protection keeps blocked"
        for entry in self._config.policy.deny_domains:
            if is_at_or_below(entry, name) or is_at_or_below(name, entry):
                return f"{name} covers {entry}, which is on the global deny list"
        return ""

    def locked_refusal(self, name: str) -> str:
        """Why no allow of any kind may name ``name`` (it is in a locked category), or ""."""
        locked = self._categories.index.match(name) & self._locked
        if not locked:
            return ""
        return f"{name} is listed as {', '.join(self._names(locked))}, which is locked: nobody can allow it"

    def explain(self, name: str, group: str, at: datetime | None = None) -> Explanation:
        """Why ``name`` gets its verdict for ``group`` at ``at`` (default: now). Computed from
        scratch, so it neither reads nor fills the decision cache."""
        name = normalize_domain(name) or name.strip().lower()  # not a domain name: explain it as typed
        when = self._clock() if at is None else at
        policy = self._policy(group)
        active = self._active_windows(when)
        stamp = when.timestamp()
        state = group_state(policy, active, self._in_force(stamp), self._bits, self._protected, self._locked, stamp)
        windows = dict.fromkeys(w for rule in policy.rules if (w := active[rule.schedule.name]) is not None)
        return Explanation(
            name=name,
            group=policy.name,
            at=when,
            listings=tuple(
                (suffix, tuple(self._names(mask))) for suffix, mask in self._categories.index.explain(name)
            ),
            list_entries=tuple(
                (entry, list_name(rank, policy.name)) for rank, entry in list_hits(policy.lists, name)
            ),
            blocked_categories=tuple(self._names(state.blocked)),
            windows=tuple(windows),
            decision=self._evaluate(policy, state, name),
            descriptions=self._categories.descriptions,
        )

    # -- compiled configuration ----------------------------------------------------------

    def _compile(self, group: GroupConfig, bits: dict[str, int]) -> GroupPolicy:
        def mask(names: tuple[str, ...]) -> int:
            value = 0
            for name in names:
                value |= bits.get(name, 0)  # a category missing from the index matches nothing
            return value

        lists: dict[str, tuple[int, ...]] = {}
        sources = (
            (GROUP_ALLOW, group.allow_domains),
            (GLOBAL_ALLOW, self._config.policy.allow_domains),
            (GROUP_DENY, group.deny_domains),
            (GLOBAL_DENY, self._config.policy.deny_domains),
        )
        for rank, domains in sources:
            for domain in domains:
                if rank not in lists.get(domain, ()):
                    lists[domain] = lists.get(domain, ()) + (rank,)
        block_mode = group.block_mode or self._config.policy.blocking.mode
        return GroupPolicy(
            name=group.name,
            always=mask(group.block),
            rules=tuple(Rule(self._schedules[r.schedule], mask(r.block), mask(r.allow)) for r in group.rules),
            lists=lists,
            safe_search=group.safe_search,
            block_mode=block_mode,
            bypass_protection=group.bypass_protection,
            essential=group.essential,
            default_allow=Decision(
                "allow", "default", group.name, block_mode, detail="no list or blocked category matches"
            ),
        )

    def _policy(self, group: str) -> GroupPolicy:
        policy = self._policies.get(group)
        if policy is not None:
            return policy
        home, _, pupil = group.partition(PUPIL_SEPARATOR)
        settings = self._home_settings.get(pupil)
        if settings is not None and home in self._group_configs:
            config, bedtime = pupil_config(self._group_configs[home], pupil, settings, self._config.policy.timezone)
            if bedtime is not None:
                self._schedules[bedtime.name] = Schedule(bedtime)
            policy = replace(
                self._compile(config, self._bits), bedtime=bedtime.name if bedtime else "", paused_until=settings.paused_until
            )
            self._policies[group] = policy
            self._valid_from = self._valid_until = _NEVER
            return policy
        default = self._config.policy.default_group
        return self._policies[home_group(default) if is_home(group) else default]

    def _names(self, mask: int) -> list[str]:
        return [name for bit, name in self._priority if mask & bit]

    def _first(self, mask: int) -> tuple[int, str]:
        for bit, name in self._priority:
            if mask & bit:
                return bit, name
        raise ValueError("empty category mask")

    # -- time ----------------------------------------------------------------------------

    def _active_windows(self, when: datetime) -> dict[str, Window | None]:
        return {name: schedule.active_window(when) for name, schedule in self._schedules.items()}

    def _refresh(self, now: datetime) -> None:
        """Recompute every group's state for ``now`` and how long it holds."""
        active = self._active_windows(now)
        overrides = self._in_force(now.timestamp())
        states = {
            name: group_state(policy, active, overrides, self._bits, self._protected, self._locked, now.timestamp())
            for name, policy in self._policies.items()
        }
        if states != self._states:
            self._decisions.clear()
            self._states = states
            self.generation += 1
        changes = [change for s in self._schedules.values() if (change := s.next_change(now)) is not None]
        self._valid_from = now.timestamp()
        self._valid_until = min(
            [min(changes, default=now + LOOKAHEAD).timestamp()]
            + [o.expires_at for o in overrides]
            + [p.paused_until for p in self._policies.values() if p.paused_until > now.timestamp()]
        )

    def _in_force(self, now: float) -> list[OverrideRule]:
        return [o for o in self._overrides if o.expires_at > now]

    # -- the rules -----------------------------------------------------------------------

    def _evaluate(self, policy: GroupPolicy, state: GroupState, name: str) -> Decision:
        group = policy.name
        mask = self._categories.index.match(name)
        if mask & self._locked:
            bit, category = self._first(mask & self._locked)
            return Decision(
                "block",
                "locked",
                group,
                policy.block_mode,
                category=category,
                detail=f"{category} is locked: blocked for everyone at all times, and nobody can allow it",
            )
        if state.curfew:
            return self._curfew(policy, state.curfew, name)
        hits = list_hits(policy.lists, name)
        if state.domain_overrides:
            override = domain_override(state.domain_overrides, name)
            if override is not None:
                if override.kind == "allow":
                    kept = self._kept_despite_override(policy, state, name, hits, mask)
                    if kept:
                        decision = self._evaluate_rules(policy, state, name, hits, mask)
                        if decision.action == "allow":
                            return decision
                        return replace(decision, detail=f"{decision.detail}; {kept}, so the {override.label} does not lift it")
                return Decision(
                    "allow" if override.kind == "allow" else "block",
                    "override",
                    group,
                    policy.block_mode,
                    detail=f"{override.domain} is {'allowed' if override.kind == 'allow' else 'blocked'} "
                    f"for {group} by an {override.label}",
                )
        return self._evaluate_rules(policy, state, name, hits, mask)

    def _kept_despite_override(
        self, policy: GroupPolicy, state: GroupState, name: str, hits: list[tuple[int, str]], mask: int
    ) -> str:
        """What keeps ``name`` from a teacher's allow override: a bypass name, the global deny
        list or a protected category blocked now ("" when nothing does)."""
        if policy.bypass_protection and name in BYPASS_NAMES:
            return "it is a bypass name"
        if any(rank == GLOBAL_DENY for rank, _ in hits):
            return "it is on the global deny list"
        protected = mask & state.blocked & self._protected
        if protected:
            return f"{self._first(protected)[1]} is a protected category"
        return ""

    def _evaluate_rules(
        self, policy: GroupPolicy, state: GroupState, name: str, hits: list[tuple[int, str]], mask: int
    ) -> Decision:
        """Every rule after the locked categories and the teacher's domain overrides, in the
        order of the module docstring; ``mask`` is the name's category mask."""
        group = policy.name
        bypass = BYPASS_NAMES.get(name) if policy.bypass_protection else None
        if bypass is not None:
            rcode, why = bypass
            return Decision(
                "block",
                "bypass-protection",
                group,
                policy.block_mode,
                rcode_override=rcode,
                detail=f"bypass protection for {group}: {why}",
            )

        if hits and hits[0][0] <= GLOBAL_ALLOW:
            rank, entry = hits[0]
            detail = on_list(name, entry, rank, group)
            overridden = mask & state.blocked
            if not overridden:
                return Decision("allow", "allow-list", group, policy.block_mode, detail=detail)
            bit, category = self._first(overridden)
            window = state.blocked_by.get(bit)
            return Decision(
                "allow",
                "allow-list",
                group,
                policy.block_mode,
                category=category,
                schedule_window=window.label if window else "",
                detail=f"{detail}, which wins over category {category}",
            )

        if hits:
            rank, entry = hits[0]
            return Decision("block", "deny-list", group, policy.block_mode, detail=on_list(name, entry, rank, group))

        blocked = mask & state.blocked
        if blocked:
            # Only names some list blocks pay for the essential check.
            entry = self._essential_entry(name, blocked) if policy.essential and self._essential else None
            if entry is None:
                return self._category_decision(policy, state, blocked)

        target = safe_search_target(name, policy.safe_search)
        if target is not None:
            return Decision(
                "rewrite",
                "safe-search",
                group,
                policy.block_mode,
                rewrite_target=target,
                detail=f"safe search for {group} answers {name} with {target}",
            )

        if blocked:
            return self._kept_essential(policy, entry, blocked)
        if not mask:
            return policy.default_allow
        # Listed but not blocked now: name the category, preferring one an open rule allows.
        return self._category_decision(policy, state, mask & state.allowed or mask)

    def _curfew(self, policy: GroupPolicy, why: str, name: str) -> Decision:
        """A parent's bedtime or pause: everything but the essential services is blocked."""
        suffix = name
        while (entry := self._essential.get(suffix)) is None and "." in suffix:
            suffix = suffix.split(".", 1)[1]
        if entry is not None:
            return Decision("allow", "essential", policy.name, policy.block_mode, detail=f"kept reachable: essential ({entry.service}) during {why}")
        return Decision("block", "parent", policy.name, policy.block_mode, detail=f"a parent's {why}: everything but essential services is blocked")

    def _essential_entry(self, name: str, blocked: int) -> EssentialEntry | None:
        """The essential entry covering ``name``, unless a list blocks a name *below* that
        entry: a listing of the entry or a parent of it is the list over-reaching (UT1 listing
        teams.microsoft.com as chat), one of a single host under it is specific knowledge (a
        phishing page on one SharePoint tenant) and still blocks."""
        suffix = name
        while (entry := self._essential.get(suffix)) is None:
            dot = suffix.find(".")
            if dot < 0:
                return None
            suffix = suffix[dot + 1 :]
        for listed, categories in self._categories.index.explain(name):
            if categories & blocked and len(listed) > len(entry.name):
                return None
        return entry

    def _kept_essential(self, policy: GroupPolicy, entry: EssentialEntry, blocked: int) -> Decision:
        """"kept reachable: essential (Microsoft Teams) — listed by chat (UT1 chat)"."""
        blocked_names = self._names(blocked)
        sources = {}
        for category, source in self._essential_hits.get(entry.name, ()):
            if category in blocked_names:
                sources.setdefault(category, []).append(source)
        listed = ", ".join(
            f"{category} ({', '.join(sources[category])})" if category in sources else category
            for category in blocked_names
        )
        return Decision(
            "allow",
            "essential",
            policy.name,
            policy.block_mode,
            category=blocked_names[0],
            detail=f"kept reachable: essential ({entry.service}) — listed by {listed}",
        )

    def _category_decision(self, policy: GroupPolicy, state: GroupState, mask: int) -> Decision:
        """The verdict for a name listed in the categories of ``mask`` (the first one
        decides): blocked if ``mask`` is within ``state.blocked``, else allowed and saying why."""
        bit, category = self._first(mask)
        decision = state.by_category.get(bit)
        if decision is None:
            decision = state.by_category[bit] = self._describe_category(policy, state, bit, category)
        return decision

    @staticmethod
    def _describe_category(policy: GroupPolicy, state: GroupState, bit: int, category: str) -> Decision:
        group = policy.name
        override = state.overridden.get(bit)
        if bit & state.blocked:
            if override is not None:
                return Decision(
                    "block",
                    "override",
                    group,
                    policy.block_mode,
                    category=category,
                    detail=f"{category} is blocked for {group} by an {override.label}",
                )
            window = state.blocked_by.get(bit)
            if window is None:
                return Decision(
                    "block",
                    "category",
                    group,
                    policy.block_mode,
                    category=category,
                    detail=f"{category} is blocked for {group} at all times",
                )
            return Decision(
                "block",
                "scheduled-category",
                group,
                policy.block_mode,
                category=category,
                schedule_window=window.label,
                detail=f"{category} is blocked for {group} during {window.schedule} ({window.label})",
            )
        window = state.allowed_by.get(bit)
        if override is not None:
            return Decision(
                "allow",
                "override",
                group,
                policy.block_mode,
                category=category,
                detail=f"{category} is allowed for {group} by an {override.label}",
            )
        if window is None:
            detail = f"{category} is not blocked for {group} now"
        else:
            detail = f"{category} is allowed for {group} during {window.schedule} ({window.label})"
        return Decision(
            "allow",
            "default",
            group,
            policy.block_mode,
            category=category,
            schedule_window=window.label if window else "",
            detail=detail,
        )
