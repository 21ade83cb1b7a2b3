"""``alerts``: the safeguarding alert rules, part of the policy document."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from filterdns.config import values as v
from filterdns.config.model import AlertRule
from filterdns.config.sections.groups import known_category
from filterdns.config.yamlnodes import Reader


def read_alerts(reader: Reader, categories: Collection[str], groups: Collection[str]) -> tuple[AlertRule, ...]:
    """``alerts: {rules: {NAME: {categories, bypass, threshold, within, per, groups, email,
    webhooks}}}``. A rule needs something to match and someone to tell."""
    rules: list[AlertRule] = []
    named = reader.named("rules", "rule")
    reader.finish()

    category = known_category(categories)

    def group(value: Any) -> str:
        if str(value) not in groups:
            raise ValueError(f"unknown group '{value}'")
        return str(value)

    for name, node in named:
        sub = Reader(reader.ctx, node, f"alerts.rules.{name}")
        rule = AlertRule(
            name=str(name),
            categories=sub.get_list("categories", category),
            groups=sub.get_list("groups", group),
            email=sub.get_list("email", v.mail_address),
            webhooks=sub.get_list("webhooks", v.http_url),
            **sub.fields(
                AlertRule,
                {
                    "bypass": v.boolean,
                    "threshold": v.at_least_one,
                    "window": ("within", v.positive_duration),
                    "per": v.choice_of(AlertRule, "per"),
                },
            ),
        )
        sub.finish()
        if sub.node_of("categories") is None and not rule.bypass:
            reader.ctx.fail(node, f"alerts.rules.{name}", "a rule needs 'categories' or 'bypass: true'")
        elif not rule.email and not rule.webhooks:
            reader.ctx.fail(node, f"alerts.rules.{name}", "a rule needs recipients: 'email' or 'webhooks' (or both)")
        else:
            rules.append(rule)
    return tuple(rules)
