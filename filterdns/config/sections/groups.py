"""``groups``: sets of clients (a class, staff, guests) and the policy that applies to them."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any

from filterdns.config import values as v
from filterdns.config.model import GroupConfig, SafeSearchConfig, ScheduledRule
from filterdns.config.sections.categories import LOCKED_CATEGORY
from filterdns.config.yamlnodes import Parser, Reader, read_flat


def known_category(categories: Collection[str]) -> Parser:
    """A parser accepting only the names of defined categories (with a did-you-mean hint)."""

    def parse(value: Any) -> str:
        if str(value) not in categories:
            hint = difflib.get_close_matches(str(value), list(categories), n=1)
            raise ValueError(f"unknown category '{value}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        return str(value)

    return parse


def _known_schedule(schedules: Collection[str]) -> Parser:
    def parse(value: Any) -> str:
        if str(value) not in schedules:
            raise ValueError(f"unknown schedule '{value}' (schedules: {', '.join(schedules) or 'none defined'})")
        return str(value)

    return parse


def _allowable(category: Parser, locked: Collection[str]) -> Parser:
    """A category a rule may allow: a defined one that is not locked."""

    def parse(value: Any) -> str:
        name = category(value)
        if name in locked:
            raise ValueError(LOCKED_CATEGORY.format(name=name))
        return name

    return parse


def _read_rules(reader: Reader, category: Parser, allowable: Parser, schedule: Parser) -> tuple[ScheduledRule, ...]:
    """``rules: [{during, block, allow}]``: what a group's schedules switch on and off."""
    rules = []
    for i, item in enumerate(reader.items("rules")):
        sub = Reader(reader.ctx, item, f"{reader.path}.rules[{i}]")
        during = sub.get("during", schedule, None)
        block = sub.get_list("block", category)
        allow = sub.get_list("allow", allowable)
        sub.finish()
        if sub.node_of("during") is None:
            reader.ctx.fail(item, sub.path, "a rule needs 'during: <schedule name>'")
        elif sub.node_of("block") is None and sub.node_of("allow") is None:
            reader.ctx.fail(item, sub.path, "a rule needs categories to 'block' or 'allow'")
        elif during is not None and (block or allow):
            rules.append(ScheduledRule(during, block, allow))
    return tuple(rules)


def read_groups(
    reader: Reader, categories: Collection[str], schedules: Collection[str], locked: Collection[str] = ()
) -> list[GroupConfig]:
    """``groups: {NAME: {description, networks, macs, block, rules, allow, deny, safe_search,
    block_mode, bypass_protection, essential, site}}``; names of categories and schedules are
    checked, and no rule may allow a ``locked`` category."""
    category, schedule = known_category(categories), _known_schedule(schedules)
    allowable = _allowable(category, locked)
    groups = []
    for name, node in reader.named("groups", "group"):
        sub = Reader(reader.ctx, node, f"groups.{name}")
        if "@" in name:  # "<group>@home" names a group's policy at home (policy/home.py)
            reader.ctx.fail(node, sub.path, "a group name cannot contain '@'")
        rules = _read_rules(sub, category, allowable, schedule)
        safe_search = read_flat(
            sub.sub("safe_search"), SafeSearchConfig, {"search": v.boolean, "youtube": v.youtube_mode}
        )
        values = sub.fields(
            GroupConfig,
            {
                "description": v.text,
                "block_mode": v.block_mode,
                "bypass_protection": v.boolean,
                "essential": v.boolean,
                "site": v.text,
            },
        )
        groups.append(
            GroupConfig(
                name=name,
                networks=sub.get_list("networks", v.parse_network, v.host_bits_note),
                macs=sub.get_list("macs", v.parse_mac),
                block=sub.get_list("block", category),
                rules=rules,
                allow_domains=sub.get_list("allow", v.domain),
                deny_domains=sub.get_list("deny", v.domain),
                safe_search=safe_search,
                **values,
            )
        )
        sub.finish()
    return groups
