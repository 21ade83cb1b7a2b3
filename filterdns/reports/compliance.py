"""The term/compliance report for school leadership: for one site (or every site) and a
range of dates, the filtering in force, the categories blocked, block counts by group and
category, and every change to filtering in the period with who made it.

It is plain data for the console's printable page and its CSV download. Unlike the family
report it is for staff, so nothing is masked; like it, it reads only the hourly counts
(kept ``store.retention.aggregates`` days, far longer than raw events) and never a domain
name or a client.

Dates are whole days in the school's time zone (``config.policy.timezone``), both ends included.
The store counts per UTC hour and an hour counts with the day it starts in, so in a zone
whose offset is not a whole number of hours a day's edges are exact to the hour only.

"The filtering in force" is the policy now, not as it was during the period: how it
changed is the list of changes, taken from the audit log (kept ``retention.audit`` days).
Each change is attributed to the groups it touched, so a site's report lists the changes
that concern its groups, plus the school-wide ones (categories, schedules, global lists...).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import yaml

from filterdns.config.model import Config, GroupConfig
from filterdns.policy.schedule import wall_to_timestamp
from filterdns.reports.guidance import INDIVIDUAL_SITES
from filterdns.reports.weekly import BLOCKED, PolicySummary, find_group, policy_summary, retention_start
from filterdns.store import DAY, AuditEntry, AuditFilter, Store
from filterdns.store.base import Row

ALL_SITES = ""
MAX_DAYS = 366  # "about a year": a leap year's worth
DEFAULT_WEEKS = 13  # a school term, roughly
# Audit actions that change what is filtered (list and category edits are policy changes).
FILTER_ACTIONS = (
    "policy.change",
    "policy.rollback",
    "policy.import",
    "override.add",
    "override.revoke",
    "review.approved",
    "review.declined",
)
MAX_CHANGES = 2000  # listed; the audit log keeps them all
AUDIT_PAGE = 1000
OVERRIDE_MAX_SECONDS = DAY  # an override lasts at most a day (Control's limit)
INDIVIDUAL_SITES_LABEL = "individual sites (deny lists)"
INDIVIDUAL_SITES_TEXT = "Domains on the school-wide or a group's deny list, outside every category."
NO_DESCRIPTION = "(no description)"
_REVISION = re.compile(r"revision (\d+)")


# --- the period ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DateRange:
    """Whole days ``first`` to ``last`` (inclusive) in the school's zone, and the POSIX
    times ``[since, until)`` they cover."""

    first: date
    last: date
    since: float
    until: float

    @classmethod
    def of(cls, first: date, last: date, zone: ZoneInfo) -> DateRange:
        """ValueError unless ``first <= last`` and the range is at most ``MAX_DAYS`` long."""
        if first.year < 1970:
            raise ValueError(f"{first.isoformat()} is too long ago")
        if last < first:
            raise ValueError("the first day must not be after the last day")
        if (last - first).days + 1 > MAX_DAYS:
            raise ValueError(f"a report covers at most {MAX_DAYS} days")
        midnight = datetime.min.time()
        return cls(
            first,
            last,
            wall_to_timestamp(datetime.combine(first, midnight), zone),
            wall_to_timestamp(datetime.combine(last + timedelta(days=1), midnight), zone),
        )

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def default_range(zone: ZoneInfo, now: float) -> DateRange:
    """The last ``DEFAULT_WEEKS`` weeks up to and including today."""
    today = datetime.fromtimestamp(now, zone).date()
    return DateRange.of(today - timedelta(weeks=DEFAULT_WEEKS) + timedelta(days=1), today, zone)


def parse_range(first: str, last: str, zone: ZoneInfo, now: float) -> DateRange:
    """The range a form asks for (ISO dates); a blank end takes the default's. ValueError
    naming the field for bad input; a range may not start after today."""
    default = default_range(zone, now)

    def day(text: str, fallback: date, label: str) -> date:
        text = text.strip()
        if not text:
            return fallback
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{label}: '{text}' is not a date such as 2026-09-01") from None

    period = DateRange.of(day(first, default.first, "from"), day(last, default.last, "to"), zone)
    if period.since > now:
        raise ValueError("the period starts in the future")
    return period


# --- sites and groups ------------------------------------------------------------------------------


def sites(config: Config) -> tuple[str, ...]:
    """Every site named by a group, sorted."""
    return tuple(sorted({g.site for g in config.policy.groups if g.site}))


def site_groups(config: Config, site: str) -> tuple[GroupConfig, ...]:
    """The groups of ``site`` in policy order; for ``ALL_SITES`` every group, the default
    one included. ValueError for a site no group names."""
    if site == ALL_SITES:
        default = find_group(config, config.policy.default_group)
        named = {g.name for g in config.policy.groups}
        return (*config.policy.groups, *((default,) if default and default.name not in named else ()))
    if site not in sites(config):
        raise ValueError(f"no group belongs to a site called '{site}'")
    return tuple(g for g in config.policy.groups if g.site == site)


# --- the filtering in force --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupFiltering:
    """One group's rules now, as the family report summarises them, with the list sizes
    staff want too, and the same in sentences (``words``)."""

    group: str
    description: str
    site: str
    policy: PolicySummary
    allow_domains: int  # the group's own allow list
    deny_domains: int
    school_allow_domains: int  # the school-wide lists, which apply to every group
    school_deny_domains: int
    words: tuple[str, ...]


def _names(names: Iterable[str]) -> str:
    return ", ".join(names)


def _domains(n: int) -> str:
    return f"{n} domain" if n == 1 else f"{n} domains"


def describe_filtering(group: GroupConfig, config: Config) -> GroupFiltering:
    """The group's filtering in force, from ``weekly.policy_summary`` (the family report's
    reading of the rules), in the console's words."""
    policy = policy_summary(group, config)
    words = [f"Always blocked: {_names(policy.always)}." if policy.always else "No category is blocked at all times."]
    words += [f"Blocked during {schedule}: {_names(names)}." for schedule, names in policy.during]
    words += [f"Allowed during {schedule}: {_names(names)}." for schedule, names in policy.allowed_during]
    words.append(
        "Safe search is on: Google, Bing and DuckDuckGo hide explicit results."
        if policy.safe_search else "Safe search is not enforced."
    )  # fmt: skip
    words.append(
        f"YouTube is in its {policy.youtube} Restricted Mode."
        if policy.youtube != "off"
        else "YouTube is not restricted."
    )
    words.append(
        "Bypass protection is on: browsers' own encrypted DNS is switched off, so the filter cannot be bypassed that way."
        if policy.bypass_protection else "Bypass protection is off: devices may use their own encrypted DNS."
    )  # fmt: skip
    for kind, own, school in (
        ("Allow", len(group.allow_domains), len(config.policy.allow_domains)),
        ("Deny", len(group.deny_domains), len(config.policy.deny_domains)),
    ):
        words.append(f"{kind} list: {_domains(own)} for this group, {_domains(school)} for the whole school.")
    return GroupFiltering(
        group=group.name,
        description=group.description,
        site=group.site,
        policy=policy,
        allow_domains=len(group.allow_domains),
        deny_domains=len(group.deny_domains),
        school_allow_domains=len(config.policy.allow_domains),
        school_deny_domains=len(config.policy.deny_domains),
        words=tuple(words),
    )


@dataclass(frozen=True, slots=True)
class CategoryUse:
    """A category blocked somewhere on the site: by whom now (``always`` groups, and
    ``scheduled`` (group, schedules) pairs), or only in the period (``in_policy`` False:
    a teacher's temporary block, or a rule changed since)."""

    category: str  # "" for individual sites (deny lists)
    label: str
    description: str
    always: tuple[str, ...]
    scheduled: tuple[tuple[str, tuple[str, ...]], ...]
    in_policy: bool


def _category_uses(
    groups: Sequence[GroupFiltering], blocked: Mapping[str, int], config: Config
) -> tuple[CategoryUse, ...]:
    """Categories in the policy (in policy order), then others that blocked something in
    the period (most blocked first), then individual sites."""
    always: dict[str, list[str]] = {}
    scheduled: dict[str, dict[str, list[str]]] = {}
    for g in groups:
        for name in g.policy.always:
            always.setdefault(name, []).append(g.group)
        for schedule, names in g.policy.during:
            for name in names:
                scheduled.setdefault(name, {}).setdefault(g.group, []).append(schedule)
    in_policy = list(dict.fromkeys([*always, *scheduled]))
    others = sorted(
        (c for c in blocked if c not in in_policy and c != INDIVIDUAL_SITES), key=lambda c: (-blocked[c], c)
    )
    individual = any(g.deny_domains or g.school_deny_domains for g in groups) or blocked.get(INDIVIDUAL_SITES, 0) > 0
    descriptions = {c.name: c.description for c in config.policy.categories}
    uses = [
        CategoryUse(
            category=name,
            label=name,
            description=descriptions.get(name) or NO_DESCRIPTION,
            always=tuple(always.get(name, ())),
            scheduled=tuple((group, tuple(s)) for group, s in scheduled.get(name, {}).items()),
            in_policy=name in always or name in scheduled,
        )
        for name in (*in_policy, *others)
    ]
    if individual:
        uses.append(CategoryUse(INDIVIDUAL_SITES, INDIVIDUAL_SITES_LABEL, INDIVIDUAL_SITES_TEXT, (), (), True))
    return tuple(uses)


# --- counts -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """One group's lookups in the period; ``configured`` is False for a group that has
    counts but no longer exists (shown in the all-sites report only)."""

    group: str
    queries: int
    blocked: int
    by_category: Mapping[str, int]
    configured: bool

    def blocked_in(self, category: str) -> int:
        return self.by_category.get(category, 0)


def _group_counts(rows: Iterable[Row], names: Sequence[str], include_others: bool) -> tuple[GroupCounts, ...]:
    queries: Counter[str] = Counter()
    blocked: dict[str, Counter[str]] = {}
    for row in rows:
        group, count = row["group"], int(row["count"])
        queries[group] += count
        if row["verdict"] == BLOCKED:
            blocked.setdefault(group, Counter())[row["category"]] += count
    known = set(names)
    order = [*names, *(sorted(g for g in queries if g not in known) if include_others else ())]
    return tuple(
        GroupCounts(g, queries[g], sum(blocked.get(g, Counter()).values()), dict(blocked.get(g, {})), g in known)
        for g in order
    )


# --- policy changes -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One audited change to filtering. ``groups``: the groups it touched; ``school_wide``:
    it changed something every group shares (categories, schedules, global lists...);
    ``scope``: the same in words."""

    time: float
    actor: str
    action: str
    target: str
    groups: tuple[str, ...]
    school_wide: bool
    scope: str
    summary: str


@dataclass(frozen=True, slots=True)
class _Scope:
    """What a change touched: ``groups`` and the ``sites`` they belong to (``None``:
    unknown, as for a group removed since, so the change concerns every site, to be safe)."""

    school_wide: bool
    groups: tuple[str, ...]
    sites: frozenset[str] | None
    label: str

    def concerns(self, site: str) -> bool:
        return site == ALL_SITES or self.school_wide or self.sites is None or site in self.sites


def revision_scope(old_text: str, new_text: str) -> tuple[bool, dict[str, frozenset[str]]]:
    """What a revision changed compared with the one before: whether any school-wide key
    changed, and the groups whose entry changed, each with its sites before and after (a
    group moved from one site to another concerns both)."""
    old, new = (yaml.safe_load(text) or {} for text in (old_text, new_text))
    old_groups, new_groups = (doc.get("groups") or {} for doc in (old, new))
    school_wide = any(old.get(key) != new.get(key) for key in {*old, *new} - {"groups"})
    touched: dict[str, frozenset[str]] = {}
    for name in dict.fromkeys([*old_groups, *new_groups]):
        before, after = old_groups.get(name), new_groups.get(name)
        if before != after:
            touched[str(name)] = frozenset(_site_of(entry) for entry in (before, after))
    return school_wide, touched


def _site_of(entry: object) -> str:
    """The site of a group's entry in a policy document ("" for none, or no entry)."""
    return str(entry.get("site") or "") if isinstance(entry, dict) else ""


class _Attributor:
    """Finds the groups an audit entry touched, reading each revision once."""

    def __init__(self, store: Store, config: Config, override_groups: Mapping[str, str]):
        self._store = store
        self._config = config
        self._override_groups = override_groups
        self._texts: dict[int, str] = {}

    async def _text(self, revision_id: int) -> str:
        if revision_id not in self._texts:
            revision = await self._store.get_revision(revision_id) if revision_id > 0 else None
            self._texts[revision_id] = revision.yaml_text if revision else ""
        return self._texts[revision_id]

    async def scope(self, entry: AuditEntry) -> _Scope:
        if entry.action.startswith("policy."):
            match = _REVISION.fullmatch(entry.target)
            if match is None:
                return _Scope(True, (), None, "whole school")
            revision_id = int(match.group(1))
            school_wide, touched = revision_scope(await self._text(revision_id - 1), await self._text(revision_id))
            label = "whole school" if school_wide else _names(touched) or "no change to the rules"
            return _Scope(school_wide, tuple(touched), frozenset().union(*touched.values()), label)
        if entry.action == "override.add":
            group = entry.target
        elif entry.action == "override.revoke":
            group = self._override_groups.get(entry.target, "")
        else:  # review decisions
            group = str(entry.detail.get("group", ""))
        found = find_group(self._config, group) if group else None
        return _Scope(
            False, (group,) if group else (), frozenset({found.site}) if found else None, group or "unknown group"
        )


def change_summary(entry: AuditEntry) -> str:
    """What a change did, in a few words, from its audit detail."""
    detail = entry.detail
    match entry.action:
        case "policy.change":
            return str(detail.get("comment") or "policy edited")
        case "policy.rollback":
            return f"rolled back to revision {detail.get('to', '?')}"
        case "policy.import":
            return (
                f"policy loaded from {detail['file']}"
                if detail.get("file")
                else "policy loaded from the configuration file"
            )
        case "override.add":
            if "kind" not in detail:
                return f"override {detail.get('id', '')}".strip()
            what = f"{detail['category']} (category)" if detail.get("category") else str(detail.get("domain", ""))
            return f"{detail['kind']} {what} for {detail.get('minutes', '?')} min"
        case "override.revoke":
            return f"override {entry.target} ended early"
        case "review.approved":
            return f"unblocking {entry.target} approved (added to the allow list)"
        case "review.declined":
            return f"unblocking {entry.target} declined"
    return entry.action


async def audit_entries(store: Store, action: str, since: float, until: float) -> list[AuditEntry]:
    """Every entry of ``action`` in ``[since, until)``, newest first, a page at a time."""
    entries: list[AuditEntry] = []
    before: int | None = None
    while True:
        page = await store.list_audit(
            AuditFilter(action=action, since=since, until=until), limit=AUDIT_PAGE, before_id=before
        )
        entries.extend(page)
        if len(page) < AUDIT_PAGE:
            return entries
        before = page[-1].id


async def policy_changes(
    store: Store, config: Config, site: str, since: float, until: float, *, limit: int = MAX_CHANGES
) -> tuple[tuple[PolicyChange, ...], bool]:
    """The changes to filtering in ``[since, until)`` that concern ``site``, oldest first:
    the latest ``limit`` of them, and whether there were more."""
    found: dict[str, list[AuditEntry]] = {a: await audit_entries(store, a, since, until) for a in FILTER_ACTIONS}
    # A revoke names the override, whose add (at most a day earlier) names the group.
    adds = [*found["override.add"], *await audit_entries(store, "override.add", since - OVERRIDE_MAX_SECONDS, since)]
    override_groups = {str(e.detail.get("id")): e.target for e in adds if "id" in e.detail}
    attributor = _Attributor(store, config, override_groups)
    changes: list[PolicyChange] = []
    for entry in sorted((e for entries in found.values() for e in entries), key=lambda e: (-e.time, -e.id)):
        scope = await attributor.scope(entry)
        if not scope.concerns(site):
            continue
        if len(changes) == limit:
            return tuple(reversed(changes)), True
        changes.append(
            PolicyChange(
                time=entry.time, actor=entry.actor, action=entry.action, target=entry.target,
                groups=scope.groups, school_wide=scope.school_wide, scope=scope.label,
                summary=change_summary(entry),
            )
        )  # fmt: skip
    return tuple(reversed(changes)), False


# --- the report ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    site: str  # ALL_SITES ("") for every site
    period: DateRange
    timezone: str
    generated: float
    groups: tuple[GroupFiltering, ...]
    categories: tuple[CategoryUse, ...]  # also the columns of the count table, in order
    counts: tuple[GroupCounts, ...]
    queries: int
    blocked: int
    changes: tuple[PolicyChange, ...]
    changes_truncated: bool
    counts_kept_since: float  # hourly counts before this are no longer kept
    audit_kept_since: float  # nor audit entries before this

    @property
    def site_label(self) -> str:
        return self.site or "All sites"

    @property
    def complete(self) -> bool:
        """False while the period has not ended yet."""
        return self.period.until <= self.generated

    @property
    def counts_incomplete(self) -> bool:
        return self.period.since < self.counts_kept_since

    @property
    def audit_incomplete(self) -> bool:
        return self.period.since < self.audit_kept_since

    def blocked_in(self, category: str) -> int:
        return sum(c.blocked_in(category) for c in self.counts)

    def notes(self) -> tuple[str, ...]:
        """What a reader must know to trust the figures: an unfinished period, data no
        longer kept, a shortened list of changes."""
        zone = ZoneInfo(self.timezone)

        def local(timestamp: float, pattern: str = "%Y-%m-%d") -> str:
            return datetime.fromtimestamp(timestamp, zone).strftime(pattern)

        notes = []
        if not self.complete:
            notes.append(
                f"The period has not ended yet: the figures run until {local(self.generated, '%Y-%m-%d %H:%M')}."
            )
        if self.counts_incomplete:
            notes.append(
                f"Counts from before {local(self.counts_kept_since)} are no longer kept: the figures start then."
            )
        if self.audit_incomplete:
            notes.append(f"Changes made before {local(self.audit_kept_since)} are no longer kept in the audit log.")
        if self.changes_truncated:
            notes.append(f"Only the latest {len(self.changes)} changes are listed; the audit log has them all.")
        return tuple(notes)


def build_compliance(
    config: Config,
    site: str,
    period: DateRange,
    rows: Iterable[Row],
    changes: Sequence[PolicyChange],
    *,
    changes_truncated: bool,
    now: float,
    counts_kept_since: float,
    audit_kept_since: float,
) -> ComplianceReport:
    """The report from hourly-count rows (``group``, ``verdict``, ``category``,
    ``count``) of the period and the changes found for it."""
    groups = site_groups(config, site)
    filtering = tuple(describe_filtering(g, config) for g in groups)
    counts = _group_counts(rows, [g.name for g in groups], include_others=site == ALL_SITES)
    blocked: Counter[str] = Counter()
    for line in counts:
        blocked.update(line.by_category)
    return ComplianceReport(
        site=site,
        period=period,
        timezone=config.policy.timezone,
        generated=now,
        groups=filtering,
        categories=_category_uses(filtering, blocked, config),
        counts=counts,
        queries=sum(c.queries for c in counts),
        blocked=sum(c.blocked for c in counts),
        changes=tuple(changes),
        changes_truncated=changes_truncated,
        counts_kept_since=counts_kept_since,
        audit_kept_since=audit_kept_since,
    )


async def load_compliance(
    store: Store, config: Config, site: str, period: DateRange, *, now: float | None = None
) -> ComplianceReport:
    """The report for ``site`` over ``period``; ValueError for an unknown site."""
    now = time.time() if now is None else now
    groups = site_groups(config, site)
    counts_kept_since = retention_start(store, now)
    audit_kept_since = now - store.settings.audit_days * DAY
    scope = None if site == ALL_SITES else [g.name for g in groups]
    rows = await store.query_aggregates(max(period.since, counts_kept_since), period.until, groups=scope)
    changes, truncated = await policy_changes(store, config, site, period.since, period.until)
    return build_compliance(
        config, site, period, rows, changes, changes_truncated=truncated, now=now,
        counts_kept_since=counts_kept_since, audit_kept_since=audit_kept_since,
    )  # fmt: skip
