"""What follows a destructive action, in sentences for the confirmation page
(``filterdns.web.confirm``): which devices change rules, which accounts lose what, and what
the revision history keeps. Each function reads the state as it is now; none changes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from filterdns.config.model import AlertRule, GroupConfig, ScheduledRule
from filterdns.store import User

if TYPE_CHECKING:
    from filterdns.server.control import Control

ROLLBACK = "The revision history keeps what is removed: rolling back on the Revisions page brings it back."


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _listed(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def group_removal(control: Control, group: GroupConfig, users: Sequence[User]) -> list[str]:
    """Removing ``group``: its devices, the accounts that see it, its overrides, its rules."""
    default = control.config.policy.default_group
    own = [str(n) for n in group.networks] + list(group.macs)
    roster = sum(1 for entry in control.roster().entries if entry.group == group.name)
    lines = []
    if own or roster:
        what = [part for part in (
            _count(len(group.networks), "network") if group.networks else "",
            _count(len(group.macs), "MAC address", "MAC addresses") if group.macs else "",
            _count(roster, "pupil or device", "pupils and devices") + " on the roster" if roster else "",
        ) if part]  # fmt: skip
        verb = "falls" if len(own) + roster == 1 else "fall"
        lines.append(f"Its {' and '.join(what)} {verb} to the {default} rules" + (f" ({_listed(own)})." if own else "."))
    else:
        lines.append("It has no networks, MAC addresses or roster entries of its own: no device changes rules.")
    accounts = [f"{u.name} ({u.role})" for u in users if group.name in u.groups]
    if accounts:
        lines.append(f"{_count(len(accounts), 'account')} can no longer see it or its reports: {_listed(accounts)}.")
    overrides = [o for o in control.active_overrides() if o.group == group.name]
    if overrides:
        lines.append(f"{_count(len(overrides), 'override')} in force for it stop{'s' if len(overrides) == 1 else ''} applying.")
    settings = [part for part in (
        _count(len(group.rules), "scheduled rule") if group.rules else "",
        _count(len(group.allow_domains) + len(group.deny_domains), "allow or deny entry", "allow and deny entries")
        if group.allow_domains or group.deny_domains else "",
    ) if part]  # fmt: skip
    if settings:
        lines.append(f"Its {' and '.join(settings)} go with it.")
    return lines + [ROLLBACK]


def category_removal(control: Control, name: str, body: Mapping[str, Any]) -> list[str]:
    """Removing the custom category ``name`` (its policy entry ``body``); [] while a group
    uses it: then there is nothing to confirm, the policy loader refuses the removal."""
    if any(name in g.block or any(name in (*r.block, *r.allow) for r in g.rules) for g in control.groups()):
        return []
    domains = len(body.get("domains") or [])
    lists = len(body.get("sources") or [])
    kept = [part for part in (_count(domains, "domain") if domains else "", _count(lists, "list address", "list addresses") if lists else "") if part]
    lines = ["No group uses it, so nothing is unblocked by removing it."]
    if kept:
        lines.append(f"Its {' and '.join(kept)} go with it.")
    return lines + [ROLLBACK]


def removed_rules(group: GroupConfig, form: Mapping[str, Any]) -> list[tuple[int, ScheduledRule]]:
    """The group's scheduled rules the rules form asks to remove (1-based numbers)."""
    return [(i + 1, rule) for i, rule in enumerate(group.rules) if form.get(f"rule-{i}-remove")]


def rules_removal(group: GroupConfig, removed: Sequence[tuple[int, ScheduledRule]]) -> list[str]:
    """Removing scheduled rules: what each stops doing, in its schedule's windows."""
    lines = []
    for number, rule in removed:
        did = [part for part in (
            f"blocks {', '.join(rule.block)}" if rule.block else "",
            f"allows {', '.join(rule.allow)}" if rule.allow else "",
        ) if part]  # fmt: skip
        lines.append(
            f"Rule {number} goes: during {rule.schedule} it {' and '.join(did) or 'does nothing'} for {group.name}; "
            f"after this, {group.name} follows its other rules and its always-blocked categories then."
        )
    return lines + [ROLLBACK]


def account_removal(user: User, *, delete: bool) -> list[str]:
    """Deleting (a parent account) or disabling ``user``."""
    if delete:
        return [f"{user.name} can no longer log in, and the account goes with its children's names, language and "
                "digest setting: no more weekly digests.", "This cannot be undone: the school adds the parent again to bring it back."]
    return [f"{user.name} can no longer log in, and the sessions they are signed in with end now.",
            "Enable brings the account back as it was."]


def alert_rule_removal(rule: AlertRule) -> list[str]:
    """Removing a safeguarding alert rule."""
    watched = ", ".join(rule.categories) + (" and bypass attempts" if rule.bypass else "") if rule.categories else "bypass attempts"
    where = f"in {', '.join(rule.groups)}" if rule.groups else "in any group"
    return [f"No new alerts are raised by {rule.name}: blocked attempts at {watched} {where} alert nobody unless another rule watches them.",
            "The alerts it raised stay in the list.", ROLLBACK]
