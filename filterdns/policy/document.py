"""Edits of the policy document, the plain data behind every policy revision.

The console never edits YAML text by hand: a page turns a form into one of these operations,
``render``s the result and hands the text to ``Control.apply_policy``, which validates it with
the real config loader (so no rule is checked twice, in two ways that could drift apart).

Every operation takes the document (``yaml.safe_load`` of a revision, whose keys are the
loader's ``POLICY_KEYS``: ``timezone``, ``categories``, ``schedules``, ``groups``,
``default_group``, ``allow``, ``deny``, ``blocking``...) and returns a NEW document, leaving
its input untouched: a page can compare before and after, and a failed apply leaves nothing
half-changed. Operations keep the document tidy so that revisions diff well: they never add an
empty key and never drop an existing one, and ``render`` is the config's one policy dumper
(``config.policytext.dump_policy``), which writes keys in one stable order.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from filterdns.config.model import PolicyConfig
from filterdns.config.policytext import dump_policy
from filterdns.config.yamlnodes import default_of
from filterdns.names import normalize_domain

PolicyDoc = dict[str, Any]

# --------------------------------------------------------------------------- groups


def set_group(doc: Mapping[str, Any], name: str, fields: Mapping[str, Any]) -> PolicyDoc:
    """Create group ``name`` or change the given fields of it; a field set to ``None`` is
    removed, so the group falls back to that key's default."""
    new = _copy(doc)
    groups = _section(new, "groups")
    group = dict(groups.get(name) or {})
    for key, value in fields.items():
        if value is None:
            group.pop(key, None)
        else:
            group[key] = copy.deepcopy(value)
    groups[name] = group
    return new


def remove_group(doc: Mapping[str, Any], name: str) -> PolicyDoc:
    """Remove a group. The default group cannot go: without it the loader would create an
    empty one, and every unknown device would silently be filtered by nothing."""
    if name == default_group(doc):
        raise ValueError(f"'{name}' is the default group; choose another default group first")
    new = _copy(doc)
    groups = _section(new, "groups")
    if name not in groups:
        raise KeyError(f"no group '{name}'")
    del groups[name]
    return new


def set_group_networks(
    doc: Mapping[str, Any], name: str, networks: Iterable[str], macs: Iterable[str] = ()
) -> PolicyDoc:
    """Which devices belong to the group: networks (CIDR or single addresses) and MACs."""
    new = _copy(doc)
    group = _group(new, name)
    _set_list(group, "networks", networks)
    _set_list(group, "macs", macs)
    return new


def set_group_categories(doc: Mapping[str, Any], name: str, block: Iterable[str]) -> PolicyDoc:
    """The categories the group has blocked at all times."""
    new = _copy(doc)
    _set_list(_group(new, name), "block", block)
    return new


def set_group_rules(doc: Mapping[str, Any], name: str, rules: Sequence[Mapping[str, Any]]) -> PolicyDoc:
    """The group's scheduled rules, in order (a later rule wins over an earlier one). Each rule
    is ``{"during": schedule, "block": [...], "allow": [...]}``; empty lists are left out."""
    new = _copy(doc)
    cleaned = []
    for rule in rules:
        entry: dict[str, Any] = {"during": rule["during"]}
        for key in ("block", "allow"):
            if rule.get(key):
                entry[key] = list(rule[key])
        cleaned.append(entry)
    _set_list(_group(new, name), "rules", cleaned)
    return new


def set_group_safe_search(doc: Mapping[str, Any], name: str, *, search: bool, youtube: str) -> PolicyDoc:
    """Safe search on Google/Bing/DuckDuckGo and YouTube's mode (strict, moderate, off)."""
    new = _copy(doc)
    _group(new, name)["safe_search"] = {"search": bool(search), "youtube": youtube}
    return new


def set_group_block_mode(doc: Mapping[str, Any], name: str, mode: str | None) -> PolicyDoc:
    """How the group's blocked names are answered; ``None``: the global ``blocking.mode``."""
    new = _copy(doc)
    group = _group(new, name)
    if mode is None:
        group.pop("block_mode", None)
    else:
        group["block_mode"] = mode
    return new


# --------------------------------------------------------------------------- allow / deny


def add_to_allow(doc: Mapping[str, Any], domain: str, group: str | None = None) -> PolicyDoc:
    """Put ``domain`` on a group's allow list, or the global one when ``group`` is None."""
    return _edit_domain_list(doc, "allow", domain, group, add=True)


def remove_from_allow(doc: Mapping[str, Any], domain: str, group: str | None = None) -> PolicyDoc:
    return _edit_domain_list(doc, "allow", domain, group, add=False)


def add_to_deny(doc: Mapping[str, Any], domain: str, group: str | None = None) -> PolicyDoc:
    """Put ``domain`` on a group's deny list, or the global one when ``group`` is None."""
    return _edit_domain_list(doc, "deny", domain, group, add=True)


def remove_from_deny(doc: Mapping[str, Any], domain: str, group: str | None = None) -> PolicyDoc:
    return _edit_domain_list(doc, "deny", domain, group, add=False)


def add_essential(doc: Mapping[str, Any], domain: str) -> PolicyDoc:
    """Put ``domain`` on the school's ``essential_extra`` list: no category list blocks it."""
    return _edit_domain_list(doc, "essential_extra", domain, None, add=True)


def normalise_domain(domain: str) -> str:
    """The form lists are compared in, so that ``WWW.Example.com.`` and ``münchen.de`` are not
    added twice. What is not a domain name is compared as typed: the loader refuses it with
    its line when the document is applied."""
    text = domain.strip().removeprefix("*.")
    return normalize_domain(text) or text.lower()


def _edit_domain_list(doc: Mapping[str, Any], key: str, domain: str, group: str | None, *, add: bool) -> PolicyDoc:
    wanted = normalise_domain(domain)
    if not wanted:
        raise ValueError("no domain given")
    new = _copy(doc)
    owner = new if group is None else _group(new, group)
    entries = [str(e) for e in owner.get(key) or []]
    present = [e for e in entries if normalise_domain(e) == wanted]
    if add and not present:
        entries.append(wanted)
    elif not add:
        if not present:
            where = f"{group}'s" if group else "the global"
            raise KeyError(f"{wanted} is not on {where} {key} list")
        entries = [e for e in entries if normalise_domain(e) != wanted]
    owner[key] = entries
    return new


# --------------------------------------------------------------------------- categories


def add_custom_category(
    doc: Mapping[str, Any],
    name: str,
    description: str,
    *,
    domains: Iterable[str] = (),
    url: str | None = None,
    list_format: str = "auto",
) -> PolicyDoc:
    """Add (or replace) a category defined in the policy itself: inline domains and/or one
    list downloaded from ``url``. A name the catalogue uses replaces that catalogue category,
    so callers check names against ``Control.categories()`` first."""
    listed = [normalise_domain(d) for d in domains if normalise_domain(d)]
    if not listed and not url:
        raise ValueError("a custom category needs domains or a list URL")
    category: dict[str, Any] = {"description": description.strip()}
    if url:
        category["sources"] = [{"url": url.strip(), "format": list_format}]
    if listed:
        category["domains"] = list(dict.fromkeys(listed))
    new = _copy(doc)
    _section(new, "categories")[name] = category
    return new


def remove_category(doc: Mapping[str, Any], name: str) -> PolicyDoc:
    """Remove a category defined in the policy (a catalogue category of the same name, if any,
    comes back). Groups still naming it make the loader refuse the document, as they should."""
    new = _copy(doc)
    categories = _section(new, "categories")
    if name not in categories:
        raise KeyError(f"no custom category '{name}'")
    del categories[name]
    return new


# --------------------------------------------------------------------------- schedules


def set_schedule(
    doc: Mapping[str, Any],
    name: str,
    *,
    weekly: Mapping[str, Sequence[str]],
    exceptions: Sequence[Mapping[str, Any]] = (),
    timezone: str | None = None,
) -> PolicyDoc:
    """Create or replace schedule ``name``: ``weekly`` maps days (``mon``, ``mon-fri``,
    ``sat,sun``) to windows ``"HH:MM-HH:MM"``; each exception is ``{"name", "dates",
    "windows"}`` (no windows: a day off). ``timezone`` None: the top-level one."""
    schedule: dict[str, Any] = {}
    if timezone:
        schedule["timezone"] = timezone
    schedule["weekly"] = {day: list(windows) for day, windows in weekly.items()}
    if exceptions:
        schedule["exceptions"] = [
            {k: copy.deepcopy(v) for k, v in exc.items() if v or k == "dates"} for exc in exceptions
        ]
    new = _copy(doc)
    _section(new, "schedules")[name] = schedule
    return new


def remove_schedule(doc: Mapping[str, Any], name: str) -> PolicyDoc:
    """Remove a schedule; rules still using it make the loader refuse the document."""
    new = _copy(doc)
    schedules = _section(new, "schedules")
    if name not in schedules:
        raise KeyError(f"no schedule '{name}'")
    del schedules[name]
    return new


# --------------------------------------------------------------------------- reading


def default_group(doc: Mapping[str, Any]) -> str:
    """The default group's name, with the model's default."""
    return str(doc.get("default_group") or default_of(PolicyConfig, "default_group"))


def group_fields(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A copy of group ``name``'s keys as written ({} for a group that is not written out,
    such as a default group the loader creates)."""
    return copy.deepcopy(dict((doc.get("groups") or {}).get(name) or {}))


# --------------------------------------------------------------------------- text


def render(doc: Mapping[str, Any]) -> str:
    """The document as YAML, exactly as every other path writes a revision, so that two
    renderings of equal documents are equal texts and a diff shows only what changed."""
    return dump_policy(doc)


def parse(text: str) -> PolicyDoc:
    """The document in ``text`` (a revision); raises ``yaml.YAMLError`` on broken YAML and
    TypeError when the text is YAML but not a mapping."""
    data = yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TypeError("a policy document is a mapping of sections")
    return data


def diff(old_text: str, new_text: str, *, old_label: str = "before", new_label: str = "after") -> list[str]:
    """A unified diff of two revisions, one line per item, no trailing newlines. Each hunk
    header ends with the YAML path of its first change (``@@ -40,6 +40,7 @@
    groups.year7.block``), so a reader of the audit log knows what changed without the file."""
    old_lines, new_lines = old_text.splitlines(), new_text.splitlines()
    # unified_diff walks exactly these groups, one "@@" header per group, in this order.
    groups = iter(difflib.SequenceMatcher(None, old_lines, new_lines).get_grouped_opcodes(3))
    lines = []
    for line in difflib.unified_diff(old_lines, new_lines, old_label, new_label, lineterm=""):
        if line.startswith("@@"):
            tag, i1, _, j1, _ = next(op for op in next(groups) if op[0] != "equal")
            path = _yaml_path(new_lines, j1) if tag == "insert" else _yaml_path(old_lines, i1)
            line = f"{line} {path}" if path else line
        lines.append(line)
    return lines


_LINE = re.compile(r"^( *)(- )?(.*)$")
_KEY = re.compile(r"^([^\s#'\"][^:#]*|'[^']*'|\"[^\"]*\"):(?:\s|$)")


def _yaml_path(lines: list[str], index: int) -> str:
    """The dotted key path of line ``index`` in YAML as ``render`` writes it, from indentation
    alone. PyYAML writes a list at the same indentation as its key, so a ``- `` item counts as
    one column deeper than its key and one shallower than the keys inside it."""
    if not lines:
        return ""
    path: list[str] = []
    current = None
    for line in reversed(lines[: min(index, len(lines) - 1) + 1]):
        indent, item, rest = _LINE.match(line).groups()  # type: ignore[union-attr]
        width = len(indent) + (1 if item else 0)
        if current is not None and width >= current:
            continue
        key = None if item else _KEY.match(rest)
        if item or key:
            current = width
        if key:
            path.append(key.group(1).strip("'\""))
            if width == 0:
                break
    return ".".join(reversed(path))


# --------------------------------------------------------------------------- helpers


def _copy(doc: Mapping[str, Any]) -> PolicyDoc:
    return copy.deepcopy(dict(doc))


def _section(doc: PolicyDoc, key: str) -> dict[str, Any]:
    """A top-level mapping (``groups``, ``categories``, ``schedules``), created if absent or
    written as an empty ``key:``."""
    section = doc.get(key)
    if not isinstance(section, dict):
        section = doc[key] = {}
    return section


def _group(doc: PolicyDoc, name: str) -> dict[str, Any]:
    """Group ``name`` for editing. The default group may exist only implicitly (the loader
    creates it), so editing it writes it out; any other unknown name is a KeyError."""
    groups = _section(doc, "groups")
    if name not in groups:
        if name != default_group(doc):
            raise KeyError(f"no group '{name}'")
        groups[name] = {}
    if groups[name] is None:
        groups[name] = {}
    return groups[name]


def _set_list(mapping: dict[str, Any], key: str, values: Iterable[Any]) -> None:
    """Set a list key without adding an empty key; lists of names lose duplicates."""
    items = list(values)
    if all(isinstance(v, str) for v in items):
        items = list(dict.fromkeys(items))
    if items or key in mapping:
        mapping[key] = items
