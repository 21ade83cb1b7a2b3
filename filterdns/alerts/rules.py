"""Alert rules in the policy document (section ``alerts: {rules: {NAME: {...}}}``): the
edits the console's rules page makes. Like ``filterdns.policy.document``, each edit returns
a new document and leaves its input alone; ``Control.apply_policy`` validates the result
with the real config loader, so no rule is checked here that the loader checks there.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from filterdns.config.model import AlertRule

PolicyDoc = dict[str, Any]

# What a rule's ``per`` counts attempts by, in words: pages, notices and the rule form.
SUBJECT_WORDS: dict[str, str] = {"client": "device", "group": "group", "pupil": "pupil"}


def watched_categories(rules: Sequence[AlertRule]) -> frozenset[str]:
    """The categories some safeguarding rule watches: lookups in them are the stuff of
    alerts, so only the roles that see alerts see them one by one (the query log)."""
    return frozenset(category for rule in rules for category in rule.categories)


def duration_text(seconds: float) -> str:
    """A window as the config writes it: ``10m``, or ``90s`` when not whole minutes."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def rule_entry(rule: AlertRule) -> dict[str, Any]:
    """A rule as written in the policy, keys in the loader's order, empty lists left out."""
    entry: dict[str, Any] = {}
    if rule.categories:
        entry["categories"] = list(rule.categories)
    if rule.bypass:
        entry["bypass"] = True
    entry["threshold"] = rule.threshold
    entry["within"] = duration_text(rule.window)
    entry["per"] = rule.per
    for key in ("groups", "email", "webhooks"):
        values = getattr(rule, key)
        if values:
            entry[key] = list(dict.fromkeys(values))
    return entry


def set_alert_rule(doc: Mapping[str, Any], rule: AlertRule) -> PolicyDoc:
    """Add rule ``rule.name``, or replace the rule of that name."""
    new = copy.deepcopy(dict(doc))
    _rules(new)[rule.name] = rule_entry(rule)
    return new


def remove_alert_rule(doc: Mapping[str, Any], name: str) -> PolicyDoc:
    """Remove a rule; KeyError if the policy has none of that name. Its past alerts stay."""
    new = copy.deepcopy(dict(doc))
    rules = _rules(new)
    if name not in rules:
        raise KeyError(f"no alert rule '{name}'")
    del rules[name]
    return new


def _rules(doc: PolicyDoc) -> dict[str, Any]:
    """The ``alerts.rules`` mapping for editing, created if absent or written empty."""
    section = doc.get("alerts")
    if not isinstance(section, dict):
        section = doc["alerts"] = {}
    rules = section.get("rules")
    if not isinstance(rules, dict):
        rules = section["rules"] = {}
    return rules
