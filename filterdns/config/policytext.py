"""The one way a policy document becomes YAML text.

Every path that stores a policy revision writes it through ``dump_policy``: the config file's
policy imported at start, the embedded default, the console's edits and API documents given
as data. Keys come out in one order whatever order they were written or edited in, so equal
documents are equal texts and a revision diff shows only what changed, never keys moving.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from filterdns.config.sections.policy import POLICY_KEYS
from filterdns.config.yamlnodes import YAML_LOADER

# The order keys are written in inside each section (as people read them: what it is, who it
# is for, what it does); keys not listed (typos the loader will report) come after.
GROUP_ORDER = (
    "description", "site", "networks", "macs", "block", "rules", "allow", "deny", "safe_search",
    "block_mode", "bypass_protection",
)
_SECTION_ORDER = {
    "categories": ("description", "sources", "domains"),
    "schedules": ("timezone", "weekly", "exceptions"),
    "groups": GROUP_ORDER,
}
_NESTED_ORDER = {
    "rules": ("during", "block", "allow"),
    "exceptions": ("name", "dates", "windows"),
    "safe_search": ("search", "youtube"),
    "sources": ("url", "file", "format"),
}
_BLOCKING_ORDER = ("mode", "ttl", "page_ipv4", "page_ipv6")
_ALERT_RULE_ORDER = ("categories", "bypass", "threshold", "within", "per", "groups", "email", "webhooks")


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Never writes anchors: ``safe_load`` turns the config's ``*term-dates`` into shared
    lists, and ``&id001`` labels in a revision would only confuse its reader."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_policy(doc: Mapping[str, Any]) -> str:
    """The document as YAML: keys in one stable order, block style, anchors written out."""
    return yaml.dump(_ordered(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def policy_document(path: str | Path) -> str:
    """The policy sections of a config file as a document (comments dropped, anchors
    resolved), in the same form as every other revision."""
    with open(path, encoding="utf-8") as stream:
        data = yaml.load(stream, Loader=YAML_LOADER) or {}
    return dump_policy({key: data[key] for key in POLICY_KEYS if key in data})


def _ordered(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with every mapping's keys in writing order."""
    out = _order(doc, POLICY_KEYS)
    for section, order in _SECTION_ORDER.items():
        if isinstance(out.get(section), dict):
            out[section] = {
                name: _order_nested(body, order) if isinstance(body, dict) else body
                for name, body in out[section].items()
            }
    if isinstance(out.get("blocking"), dict):
        out["blocking"] = _order(out["blocking"], _BLOCKING_ORDER)
    alerts = out.get("alerts")
    if isinstance(alerts, dict) and isinstance(alerts.get("rules"), dict):
        rules = {name: _order(rule, _ALERT_RULE_ORDER) if isinstance(rule, dict) else rule for name, rule in alerts["rules"].items()}
        out["alerts"] = {**alerts, "rules": rules}
    return out


def _order_nested(body: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    result = _order(body, order)
    for key, nested_order in _NESTED_ORDER.items():
        value = result.get(key)
        if isinstance(value, dict):
            result[key] = _order(value, nested_order)
        elif isinstance(value, list):
            result[key] = [_order(v, nested_order) if isinstance(v, dict) else v for v in value]
    return result


def _order(mapping: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    known = {key: mapping[key] for key in order if key in mapping}
    known.update((key, value) for key, value in mapping.items() if key not in known)
    return known
