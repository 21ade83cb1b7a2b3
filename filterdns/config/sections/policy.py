"""The policy: the sections the console edits and the store keeps as revisions (groups,
schedules, categories, allow/deny, blocking, alerts...). Everything else in config.yaml
belongs to the node (see ``node.py``).

``POLICY_KEYS`` is not written out by hand: it is the list of top-level keys ``read_policy``
asks for, so a new policy section needs nothing but its reader.
"""

from __future__ import annotations

from pathlib import Path

from filterdns.config import values as v
from filterdns.config.model import BlockingConfig, GroupConfig, PolicyConfig
from filterdns.config.sections.alerts import read_alerts
from filterdns.config.sections.categories import read_catalogue, read_categories
from filterdns.config.sections.essential import read_essential_extra
from filterdns.config.sections.groups import known_category, read_groups
from filterdns.config.sections.schedules import read_schedules
from filterdns.config.yamlnodes import Context, Node, Reader, default_of, node_at, read_flat

NEEDS_PAGE_ADDRESS = "block mode 'blockpage' needs the block page's address"


def read_policy(top: Reader, base: Path, list_roots: tuple[Path, ...]) -> PolicyConfig:
    """The policy from the top-level mapping ``top``, read in the order its keys are written
    in a policy document. Paths in it are relative to ``base``; local list files must be
    inside ``list_roots`` (the node's ``list_file_roots``)."""
    timezone = top.get("timezone", v.parse_timezone, default_of(PolicyConfig, "timezone"))
    trusted_forwarders = top.get_list("trusted_forwarders", v.parse_network, v.host_bits_note)
    categories, essential = read_catalogue(top, base, list_roots)
    locked = frozenset(name for name, category in categories.items() if category.locked)
    categories.update(read_categories(top, base, list_roots, locked))
    schedules = read_schedules(top, timezone)
    groups = read_groups(top, categories, schedules, locked)
    school_networks = top.get_list("school_networks", v.parse_network, v.host_bits_note)
    home_block = top.get_list("home_block", known_category(categories)) if top.node_of("home_block") else None
    default_group = top.get("default_group", v.text, default_of(PolicyConfig, "default_group"))
    if default_group not in {g.name for g in groups}:
        groups.append(GroupConfig(name=default_group, description="Clients that match no other group"))
    policy = PolicyConfig(
        timezone=timezone,
        trusted_forwarders=trusted_forwarders,
        categories=tuple(categories.values()),
        schedules=tuple(schedules.values()),
        groups=tuple(groups),
        default_group=default_group,
        allow_domains=top.get_list("allow", v.domain),
        deny_domains=top.get_list("deny", v.domain),
        blocking=read_flat(
            top.sub("blocking"),
            BlockingConfig,
            {"mode": v.block_mode, "ttl": v.int_seconds, "page_ipv4": v.ip_address, "page_ipv6": v.ip_address},
        ),
        protected_categories=top.get_list("protected_categories", v.text)
        or default_of(PolicyConfig, "protected_categories"),
        essential=essential + read_essential_extra(top),
        school_networks=school_networks,
        home_block=default_of(PolicyConfig, "home_block") if home_block is None else home_block,
        alert_rules=read_alerts(top.sub("alerts"), categories, [g.name for g in groups]),
    )
    _check_policy(top, policy)
    return policy


def _check_policy(top: Reader, policy: PolicyConfig) -> None:
    """Rules that involve several sections at once; each problem points at the line that
    makes it one."""
    blocking, groups = policy.blocking, policy.groups
    ctx = top.ctx
    if not (blocking.page_ipv4 or blocking.page_ipv6):
        if blocking.mode == "blockpage":
            ctx.fail(node_at(top.node, "blocking", "mode"), "blocking.page_ipv4", NEEDS_PAGE_ADDRESS)
        for group in groups:
            if group.block_mode == "blockpage":
                ctx.fail(node_at(top.node, "groups", group.name, "block_mode"), "blocking.page_ipv4", NEEDS_PAGE_ADDRESS)
    seen: dict[str, str] = {}
    for group in groups:
        for mac in group.macs:
            if mac in seen and seen[mac] != group.name:
                ctx.fail(
                    node_at(top.node, "groups", group.name, "macs"),
                    f"groups.{group.name}.macs",
                    f"{mac} is also in group '{seen[mac]}'",
                )
            seen[mac] = group.name


def _keys_read_by_policy() -> tuple[str, ...]:
    """The top-level keys ``read_policy`` asks for, in its order (an empty document names
    them all and touches no file)."""
    reader = Reader(Context("<policy keys>"), Node({}, 1), "")
    read_policy(reader, Path("."), ())
    return tuple(reader.used)


# The keys of the policy document: what the console edits and what is kept as revisions.
POLICY_KEYS = _keys_read_by_policy()
