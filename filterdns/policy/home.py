"""Where a device is: at school or at home, and the policy each group gets at home.

A query is *at school* when it comes from one of the school's networks: the groups'
networks, the policy's ``school_networks`` and its ``trusted_forwarders`` (a school router
forwarding for its pupils). A DoH or DoT query from any other address is *at home*: a
take-home device naming its pupil from the family's broadband. Plain DNS never reaches us
from home (the allowed networks refuse it), so only encrypted queries are ever at home.
A policy that names no network at all cannot tell: then every query is at school.

At home a group's policy is its own with two changes: the lesson-time (scheduled) rules do
not apply, and the categories blocked at all times are the school's home floor
(``home_block``, by default adult, gambling, malware, phishing and self-harm) plus the
protected and locked ones. Allow and deny lists, bypass protection, safe search and the
essential services stay the group's. The engine compiles this as a group of its own,
``<group>@home``, once per policy: the query path pays a different cache key, not a branch.
"""

from __future__ import annotations

from dataclasses import replace

from filterdns.config.model import GroupConfig, IPNetwork, PolicyConfig

HOME_SUFFIX = "@home"
Where = str  # "school" or "home"
PLACES: tuple[Where, ...] = ("school", "home")


def home_group(group: str) -> str:
    """The name of ``group``'s home policy (``year7`` → ``year7@home``)."""
    return group if group.endswith(HOME_SUFFIX) else group + HOME_SUFFIX


def group_at(group: str, where: Where) -> str:
    """The policy ``group`` gets at ``where`` ("school" or "home")."""
    return home_group(group) if where == "home" else school_group(group)


def school_group(group: str) -> str:
    """The configured group a (possibly home) policy name belongs to."""
    return group[: -len(HOME_SUFFIX)] if group.endswith(HOME_SUFFIX) else group


def is_home(group: str) -> bool:
    return group.endswith(HOME_SUFFIX)


def school_networks(policy: PolicyConfig) -> tuple[IPNetwork, ...]:
    """Every network a query counts as "at school" from."""
    networks = [network for group in policy.groups for network in group.networks]
    return tuple(dict.fromkeys([*networks, *policy.school_networks, *policy.trusted_forwarders]))


def home_config(group: GroupConfig, policy: PolicyConfig) -> GroupConfig:
    """``group``'s policy at home: no scheduled rules, the home floor blocked at all times."""
    locked = tuple(category.name for category in policy.categories if category.locked)
    floor = dict.fromkeys([*policy.home_block, *policy.protected_categories, *locked])
    description = group.description or group.name
    return replace(
        group,
        name=home_group(group.name),
        description=f"{description} (at home)",
        networks=(),
        macs=(),
        block=tuple(floor),
        rules=(),
    )
