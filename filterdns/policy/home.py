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

A pupil whose parents tightened their home settings (``HomeSettings``) gets a policy of
their own, ``<group>@home/<pupil>``, compiled by the engine the first time it is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from filterdns.config.model import WEEKDAYS, GroupConfig, IPNetwork, PolicyConfig, ScheduleConfig

HOME_SUFFIX = "@home"
PUPIL_SEPARATOR = "/"
Where = str  # "school" or "home"
PLACES: tuple[Where, ...] = ("school", "home")


def home_group(group: str) -> str:
    """The name of ``group``'s home policy (``year7`` → ``year7@home``)."""
    return group if group.endswith(HOME_SUFFIX) else group + HOME_SUFFIX


def group_at(group: str, where: Where) -> str:
    """The policy ``group`` gets at ``where`` ("school" or "home")."""
    return home_group(group) if where == "home" else school_group(group)


def school_group(group: str) -> str:
    """The configured group a (possibly home, or a pupil's home) policy name belongs to."""
    group = group.split(PUPIL_SEPARATOR, 1)[0]
    return group[: -len(HOME_SUFFIX)] if group.endswith(HOME_SUFFIX) else group


def is_home(group: str) -> bool:
    return group.split(PUPIL_SEPARATOR, 1)[0].endswith(HOME_SUFFIX)


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


@dataclass(frozen=True, slots=True)
class HomeSettings:
    """What a pupil's parents set for their take-home device at home; they only tighten
    the school's home policy: more categories blocked, a nightly bedtime (``("21:00",
    "07:00")`` in the school's time zone), a pause until a moment (unix time). During a
    bedtime or pause everything but the essential services is blocked."""

    block: tuple[str, ...] = ()
    bedtime: tuple[str, str] | None = None
    paused_until: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"block": list(self.block), "bedtime": list(self.bedtime) if self.bedtime else None,
                "paused_until": self.paused_until}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HomeSettings:
        bedtime = data.get("bedtime")
        return cls(tuple(data.get("block") or ()), (str(bedtime[0]), str(bedtime[1])) if bedtime else None,
                   float(data.get("paused_until") or 0.0))  # fmt: skip


def pupil_policy(group: str, pupil: str) -> str:
    """The name of ``pupil``'s own home policy within ``group``'s: ``year7@home/p-101``."""
    return f"{home_group(group)}{PUPIL_SEPARATOR}{pupil}"


def pupil_config(home: GroupConfig, pupil: str, settings: HomeSettings, zone: str) -> tuple[GroupConfig, ScheduleConfig | None]:
    """``pupil``'s home policy (their group's with the parents' categories added) and the
    schedule of their bedtime, if they have one."""
    config = replace(home, name=f"{home.name}{PUPIL_SEPARATOR}{pupil}", block=tuple(dict.fromkeys(home.block + settings.block)))
    if settings.bedtime is None:
        return config, None
    every_day = {day: (settings.bedtime,) for day in WEEKDAYS}
    return config, ScheduleConfig(f"bedtime{PUPIL_SEPARATOR}{pupil}", zone, every_day)
