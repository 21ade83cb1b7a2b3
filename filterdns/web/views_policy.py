"""Groups, their policy, the weekly timetable and the policy revisions.

Every change is a small edit of the latest policy document (``filterdns.policy.document``),
made at the moment the form is sent and handed to ``Control.apply_policy`` with a comment: it
is validated by the real config loader, stored as a revision, audited and applied live. When
the loader refuses it, the page comes back with the loader's problems (file:line: key:
message) next to the form that was sent and the values as they were typed.

Forms that replace a whole field (the blocked categories, the rules...) carry the revision
they were drawn from; if someone else changed the policy in between, the form is shown again
with the new values instead of silently undoing their change.

Admins change; viewers look; teachers and parents have no access here (403).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiMapping

from filterdns.config.loader import ConfigError
from filterdns.config.model import BLOCK_MODES, WEEKDAYS, GroupConfig, ScheduleConfig
from filterdns.policy import document
from filterdns.store import DAY, StoreError
from filterdns.web.auth import require
from filterdns.web.common import NavItem, add_nav, all_group_names, control_of, render, user_of
from filterdns.web.confirm import confirmation, confirmed
from filterdns.web.consequences import group_removal, removed_rules, rules_removal
from filterdns.web.domain_input import list_change, took_note, took_query

READ_ROLES = ("admin", "viewer")
CHANGE_ROLES = ("admin",)
BLOCK_MODE_WORDS = {
    "null_ip": "answer 0.0.0.0 / :: (fails at once)",
    "nxdomain": "no such domain",
    "refused": "refuse to answer",
    "blockpage": "show the block page",
}
YOUTUBE_MODES = ("off", "moderate", "strict")
REVISIONS_PER_PAGE = 20
NOTICE = "Saved as revision {revision}; it applies now."


class StaleForm(ValueError):
    """The policy changed between showing a form and sending it."""


# --- applying a change ------------------------------------------------------------------------


async def apply_change(
    request: web.Request,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    comment: str,
    *,
    drawn_from: str | None = None,
) -> int:
    """Apply ``change`` to the latest policy document and save it as a new revision.

    ``drawn_from`` is the revision id a form was drawn from (its hidden ``revision`` field):
    when the policy has moved on since, ``StaleForm`` is raised instead. Raises ConfigError
    (the loader refused the result), or ValueError/KeyError from the edit itself."""
    control = control_of(request)
    current, _ = control.policy_document()
    if drawn_from is not None and drawn_from.strip() and drawn_from.strip() != str(current):
        raise StaleForm(
            f"The policy changed (now revision {current}) since this page was opened. "
            "The form shows the current values: check them and save again."
        )
    new = change(control.policy_data())
    return await control.apply_policy(document.render(new), author=user_of(request).name, comment=comment)


def comment_for(form: Mapping[str, Any], what: str) -> str:
    """The revision comment: what the form changed, plus the admin's own words if any."""
    extra = str(form.get("comment", "")).strip()[:500]
    return f"{what}: {extra}" if extra else what


def problems_of(error: Exception) -> list[str]:
    """The lines a page shows for a refused change."""
    if isinstance(error, ConfigError):
        return list(error.problems)
    if isinstance(error, KeyError):
        return [str(error.args[0]) if error.args else "not found"]
    return [str(error)]


def notice(request: web.Request) -> str:
    """The "saved" line after a redirect. Only a revision number comes from the query string,
    never text, so a link cannot make the console say something it did not."""
    revision = request.query.get("saved", "")
    return " ".join(filter(None, (NOTICE.format(revision=revision) if revision.isdigit() else "", took_note(request))))


def group_url(name: str, query: str = "") -> str:
    return f"/groups/{quote(name, safe='')}" + (f"?{query}" if query else "")


def lines_of(text: str) -> list[str]:
    """Non-empty lines (or comma-separated items) of a textarea, trimmed."""
    return [item.strip() for line in text.splitlines() for item in line.split(",") if item.strip()]


# --- groups list ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupRow:
    group: GroupConfig
    block_mode: str
    queries_24h: int | None  # None: the store cannot say right now
    is_default: bool


async def group_rows(request: web.Request) -> list[GroupRow]:
    """Each group with its effective block mode and its questions in the last day (from the
    hourly counts: cheap, unlike counting distinct clients). The page still works, without
    the counts, while the store is down: it is how an admin fixes a group in a hurry."""
    control = control_of(request)
    now = time.time()
    counts: dict[str, int] | None
    try:
        rows = await control.store.query_aggregates(now - DAY, now + 1)
    except StoreError:
        counts = None
    else:
        counts = {}
        for row in rows:
            counts[row["group"]] = counts.get(row["group"], 0) + int(row["count"])
    config = control.config
    configured = {g.name: g for g in control.groups()}
    return [
        GroupRow(
            group=configured.get(name) or GroupConfig(name),
            block_mode=(configured[name].block_mode if name in configured else None) or config.policy.blocking.mode,
            queries_24h=None if counts is None else counts.get(name, 0),
            is_default=name == config.policy.default_group,
        )
        for name in all_group_names(control)
    ]


async def _groups_page(request: web.Request, *, form: Mapping[str, str] | None = None,
                       problems: Sequence[str] = (), status: int = 200) -> web.Response:
    return await render(
        request,
        "groups.html",
        {
            "rows": await group_rows(request),
            "can_change": user_of(request).role in CHANGE_ROLES,
            "form": form or {"name": "", "description": "", "networks": "", "macs": "", "comment": ""},
            "problems": list(problems),
            "notice": notice(request),
        },
        status=status,
    )


@require(*READ_ROLES)
async def groups_page(request: web.Request) -> web.StreamResponse:
    return await _groups_page(request)


@require(*CHANGE_ROLES)
async def add_group(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    fields = {
        "description": str(form.get("description", "")).strip() or None,
        "networks": lines_of(str(form.get("networks", ""))) or None,
        "macs": lines_of(str(form.get("macs", ""))) or None,
    }
    try:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError("a group name is letters, digits, - and _ (e.g. year7, staff-wifi)")
        if name in all_group_names(control_of(request)):
            raise ValueError(f"there is a group called {name} already")
        revision = await apply_change(
            request, lambda doc: document.set_group(doc, name, fields), comment_for(form, f"add group {name}")
        )
    except (ConfigError, ValueError, KeyError) as error:
        values = {key: str(form.get(key, "")) for key in ("name", "description", "networks", "macs", "comment")}
        return await _groups_page(request, form=values, problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(group_url(name, f"saved={revision}"))


# --- one group --------------------------------------------------------------------------------


def group_form(group: GroupConfig, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The values the group page's forms start from, one entry per form (section)."""
    written = document.group_fields(doc, group.name)
    return {
        "details": {
            "description": group.description,
            "networks": "\n".join(str(n) for n in written.get("networks") or group.networks),
            "macs": "\n".join(str(m) for m in written.get("macs") or group.macs),
        },
        "categories": {"block": set(group.block)},
        "rules": [{"during": r.schedule, "block": set(r.block), "allow": set(r.allow)} for r in group.rules],
        "safe_search": {"search": group.safe_search.search, "youtube": group.safe_search.youtube},
        "block_mode": {"mode": group.block_mode or ""},
        "lists": {"allow": list(group.allow_domains), "deny": list(group.deny_domains), "new_allow": "", "new_deny": ""},
    }


@dataclass(slots=True)
class SectionResult:
    """What a failed form sends back to the page: its section, the problems, and the values
    as typed (merged over the section's current values; None: show the current ones)."""

    section: str
    problems: list[str]
    values: Any = None


def _group_or_404(request: web.Request) -> GroupConfig:
    name = request.match_info["name"]
    control = control_of(request)
    for group in control.groups():
        if group.name == name:
            return group
    if name == control.config.policy.default_group:
        return GroupConfig(name)
    raise web.HTTPNotFound(text=f"There is no group called {name}.")


async def _group_page(request: web.Request, group: GroupConfig, failed: SectionResult | None = None) -> web.Response:
    control = control_of(request)
    revision, _ = control.policy_document()
    form = group_form(group, control.policy_data())
    if failed is not None and failed.values is not None:
        current = form[failed.section]
        form[failed.section] = {**current, **failed.values} if isinstance(current, dict) else failed.values
    config = control.config
    return await render(
        request,
        "group_edit.html",
        {
            "group": group,
            "is_default": group.name == config.policy.default_group,
            "revision": revision,
            "form": form,
            "failed": failed,
            "categories": control.categories(),
            "schedules": [s.name for s in control.schedules()],
            "block_modes": BLOCK_MODES,
            "block_mode_words": BLOCK_MODE_WORDS,
            "default_block_mode": config.policy.blocking.mode,
            "youtube_modes": YOUTUBE_MODES,
            "can_change": user_of(request).role in CHANGE_ROLES,
            "notice": notice(request),
        },
        status=422 if failed else 200,
    )


@require(*READ_ROLES)
async def group_page(request: web.Request) -> web.StreamResponse:
    return await _group_page(request, _group_or_404(request))


def _parse_rules(form: MultiMapping[Any]) -> list[dict[str, Any]]:
    """The rules form: ``rule-N-during``, ``rule-N-block``/``-allow`` (checkboxes, several
    values) and ``rule-N-remove`` for each existing rule N, and ``rule-new-*`` for one more.
    A new rule with no schedule picked is ignored; order is kept."""
    keys = sorted({k.split("-")[1] for k in form if k.startswith("rule-") and k.endswith("-during")},
                  key=lambda k: (k == "new", int(k) if k.isdigit() else 0))
    rules = []
    for key in keys:
        during = str(form.get(f"rule-{key}-during", "")).strip()
        if form.get(f"rule-{key}-remove") or not during:
            continue
        block = [str(v) for v in form.getall(f"rule-{key}-block", [])]
        allow = [str(v) for v in form.getall(f"rule-{key}-allow", [])]
        if key == "new" and not block and not allow:
            continue
        rules.append({"during": during, "block": block, "allow": allow})
    return rules


# What each group form asks for: what the revision comment says, the edit of the document,
# and the section's values as typed, to show them again if the edit is refused.
Edit = Callable[[dict[str, Any]], dict[str, Any]]
SectionEdit = tuple[str, Edit, Any]


def _details_change(name: str, form: MultiMapping[Any]) -> SectionEdit:
    networks, macs = lines_of(str(form.get("networks", ""))), lines_of(str(form.get("macs", "")))
    description = str(form.get("description", "")).strip()

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        doc = document.set_group(doc, name, {"description": description or None})
        return document.set_group_networks(doc, name, networks, macs)

    typed = {key: str(form.get(key, "")) for key in ("description", "networks", "macs")}
    return "description, networks and MACs", change, typed


def _categories_change(name: str, form: MultiMapping[Any]) -> SectionEdit:
    block = [str(v) for v in form.getall("block", [])]
    return "categories blocked always", lambda doc: document.set_group_categories(doc, name, block), {"block": set(block)}


def _rules_change(name: str, form: MultiMapping[Any]) -> SectionEdit:
    rules = _parse_rules(form)
    typed = [{"during": r["during"], "block": set(r["block"]), "allow": set(r["allow"])} for r in rules]
    return "scheduled rules", lambda doc: document.set_group_rules(doc, name, rules), typed


def _safe_search_change(name: str, form: MultiMapping[Any]) -> SectionEdit:
    search = bool(form.get("search"))
    youtube = str(form.get("youtube", "off"))
    if youtube not in YOUTUBE_MODES:
        raise ValueError(f"YouTube mode is one of {', '.join(YOUTUBE_MODES)}")
    return (
        "safe search",
        lambda doc: document.set_group_safe_search(doc, name, search=search, youtube=youtube),
        {"search": search, "youtube": youtube},
    )


def _block_mode_change(name: str, form: MultiMapping[Any]) -> SectionEdit:
    mode = str(form.get("mode", ""))
    if mode and mode not in BLOCK_MODES:
        raise ValueError(f"block mode is one of {', '.join(BLOCK_MODES)}")
    return "block mode", lambda doc: document.set_group_block_mode(doc, name, mode or None), {"mode": mode}


SECTIONS: dict[str, Callable[[str, MultiMapping[Any]], SectionEdit]] = {
    "details": _details_change,
    "categories": _categories_change,
    "rules": _rules_change,
    "safe_search": _safe_search_change,
    "block_mode": _block_mode_change,
    "lists": list_change,
}


@require(*CHANGE_ROLES)
async def change_group(request: web.Request) -> web.StreamResponse:
    """POST /groups/{name}/{section}: one of the group page's forms."""
    group = _group_or_404(request)
    section = request.match_info["section"]
    make = SECTIONS.get(section)
    if make is None:
        raise web.HTTPNotFound(text="There is no such form.")
    form = await request.post()
    if section == "rules" and not confirmed(form) and (removed := removed_rules(group, form)):
        return await confirmation(
            request, form, title=f"Remove {len(removed)} of {group.name}'s rules?", consequences=rules_removal(group, removed),
            button="Save and remove", cancel=group_url(group.name) + "#rules",
        )  # fmt: skip
    typed: Any = None
    try:
        what, change, typed = make(group.name, form)
        revision = await apply_change(
            request, change, comment_for(form, f"{group.name}: {what}"), drawn_from=str(form.get("revision", ""))
        )
    except StaleForm as error:
        return await _group_page(request, _group_or_404(request), SectionResult(section, [str(error)]))
    except (ConfigError, ValueError, KeyError) as error:
        return await _group_page(request, group, SectionResult(section, problems_of(error), typed))
    raise web.HTTPSeeOther(group_url(group.name, f"saved={revision}{took_query(request, form)}") + f"#{section}")


@require(*CHANGE_ROLES)
async def remove_group(request: web.Request) -> web.StreamResponse:
    group = _group_or_404(request)
    form = await request.post()
    if not confirmed(form) and group.name != control_of(request).config.policy.default_group:  # that one is refused
        users = await control_of(request).store.list_users()
        return await confirmation(
            request, form, title=f"Remove the group {group.name}?", consequences=group_removal(control_of(request), group, users),
            button=f"Remove {group.name}", cancel=group_url(group.name),
        )  # fmt: skip
    try:
        revision = await apply_change(
            request, lambda doc: document.remove_group(doc, group.name), comment_for(form, f"remove group {group.name}")
        )
    except (ConfigError, ValueError, KeyError) as error:
        return await _group_page(request, group, SectionResult("remove", problems_of(error)))
    raise web.HTTPSeeOther(f"/groups?saved={revision}")


# --- timetable --------------------------------------------------------------------------------

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Cell:
    """One day's stretch of the timetable: the schedules open in it and, for the chosen group,
    the categories blocked there beyond (``adds``) or despite (``lifts``) the always-blocked ones."""

    schedules: tuple[str, ...]
    adds: tuple[str, ...] = ()
    lifts: tuple[str, ...] = ()
    rows: int = 1  # rowspan


@dataclass(frozen=True, slots=True)
class Row:
    start: str
    end: str
    cells: tuple[Cell | None, ...]  # None: covered by a cell above (rowspan)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    return int(hours) * 60 + int(minutes)


def weekly_intervals(schedule: ScheduleConfig) -> list[list[tuple[int, int]]]:
    """Per weekday (Monday first), the schedule's windows as minutes ``[start, end)``; a
    window past midnight is split, its tail belonging to the next day's column."""
    days: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
    for index, day in enumerate(WEEKDAYS):
        for start_text, end_text in schedule.weekly.get(day, ()):
            start, end = _minutes(start_text), _minutes(end_text)
            if end > start:
                days[index].append((start, end))
            else:
                days[index].append((start, MINUTES_PER_DAY))
                if end:
                    days[(index + 1) % 7].append((0, end))
    return days


def timetable(schedules: Sequence[ScheduleConfig], group: GroupConfig | None) -> list[Row]:
    """The week as rows of time (from the first window to the last, cut at every window's
    start and end) by seven days; equal neighbouring cells of a day are merged."""
    intervals = {s.name: weekly_intervals(s) for s in schedules}
    edges = sorted({edge for days in intervals.values() for day in days for span in day for edge in span})
    segments = list(itertools.pairwise(edges))
    columns = [[_cell(intervals, day, a, b, group) for a, b in segments] for day in range(7)]
    merged: list[list[Cell | None]] = [[None] * 7 for _ in segments]
    for day, cells in enumerate(columns):
        top = 0
        for i in range(1, len(cells) + 1):
            if i == len(cells) or cells[i] != cells[top]:
                merged[top][day] = Cell(cells[top].schedules, cells[top].adds, cells[top].lifts, i - top)
                top = i
    return [Row(_clock(a), _clock(b), tuple(cells)) for (a, b), cells in zip(segments, merged)]


def _cell(
    intervals: Mapping[str, list[list[tuple[int, int]]]], day: int, start: int, end: int, group: GroupConfig | None
) -> Cell:
    open_now = tuple(name for name, days in intervals.items() if any(a <= start and end <= b for a, b in days[day]))
    if group is None:
        return Cell(open_now)
    blocked = dict.fromkeys(group.block)
    for rule in group.rules:  # in order: a later rule wins, as in the engine
        if rule.schedule in open_now:
            blocked.update(dict.fromkeys(rule.block))
            for category in rule.allow:
                blocked.pop(category, None)
    always = set(group.block)
    return Cell(
        open_now,
        tuple(c for c in blocked if c not in always),
        tuple(c for c in group.block if c not in blocked),
    )


@require(*READ_ROLES)
async def timetable_page(request: web.Request) -> web.StreamResponse:
    control = control_of(request)
    names = all_group_names(control)
    chosen = request.query.get("group", "")
    if chosen and chosen not in names:
        raise web.HTTPNotFound(text=f"There is no group called {chosen}.")
    groups = {g.name: g for g in control.groups()}
    group = (groups.get(chosen) or GroupConfig(chosen)) if chosen else None
    schedules = control.schedules()
    return await render(
        request,
        "timetable.html",
        {
            "days": [d.capitalize() for d in WEEKDAYS],
            "rows": timetable(schedules, group),
            "schedules": schedules,
            "schedule_index": {s.name: i for i, s in enumerate(schedules)},
            "zones": sorted({s.timezone for s in schedules}),
            "groups": names,
            "group": group,
        },
    )


# --- revisions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevisionRow:
    id: int
    created: float
    author: str
    comment: str
    node: str
    diff: list[str]
    is_current: bool


async def revision_rows(request: web.Request, before: int | None) -> tuple[list[RevisionRow], int | None]:
    """A page of revisions, newest first, each with its diff against the one before it, and
    the id to page back from (None on the last page)."""
    control = control_of(request)
    # One more than shown: the oldest shown revision is diffed against it.
    revisions = await control.store.list_revisions(limit=REVISIONS_PER_PAGE + 1, before_id=before)
    current, _ = control.policy_document()
    rows = [
        RevisionRow(
            r.id, r.created, r.author, r.comment, r.node,
            document.diff(older.yaml_text if older else "", r.yaml_text,
                          old_label=f"revision {older.id}" if older else "nothing", new_label=f"revision {r.id}"),
            r.id == current,
        )
        for r, older in zip(revisions[:REVISIONS_PER_PAGE], [*revisions[1:], None])
    ]  # fmt: skip
    return rows, rows[-1].id if len(revisions) > REVISIONS_PER_PAGE else None


async def _revisions_page(request: web.Request, *, problems: Sequence[str] = (), status: int = 200) -> web.Response:
    try:
        before = int(request.query["before"]) if "before" in request.query else None
    except ValueError:
        raise web.HTTPBadRequest(text="before is a revision number") from None
    rows, older = await revision_rows(request, before)
    rolled_back, saved = request.query.get("rolled_back", ""), request.query.get("saved", "")
    return await render(
        request,
        "revisions.html",
        {
            "rows": rows,
            "older": older,
            "can_change": user_of(request).role in CHANGE_ROLES,
            "notice": f"Rolled back to revision {rolled_back} as revision {saved}; it applies now."
            if rolled_back.isdigit() and saved.isdigit() else "",
            "problems": list(problems),
        },
        status=status,
    )


@require(*READ_ROLES)
async def revisions_page(request: web.Request) -> web.StreamResponse:
    return await _revisions_page(request)


@require(*CHANGE_ROLES)
async def rollback(request: web.Request) -> web.StreamResponse:
    try:
        revision_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such revision.") from None
    try:
        new_id = await control_of(request).rollback(revision_id, author=user_of(request).name)
    except (ConfigError, ValueError) as error:
        return await _revisions_page(request, problems=problems_of(error), status=422)
    raise web.HTTPSeeOther(f"/revisions?rolled_back={revision_id}&saved={new_id}")


def setup(app: web.Application) -> None:
    app.router.add_get("/groups", groups_page, name="groups")
    app.router.add_post("/groups", add_group)
    app.router.add_get("/groups/{name}", group_page, name="group")
    app.router.add_post("/groups/{name}/remove", remove_group)
    app.router.add_post("/groups/{name}/{section}", change_group)
    app.router.add_get("/timetable", timetable_page, name="timetable")
    app.router.add_get("/revisions", revisions_page, name="revisions")
    app.router.add_post("/revisions/{id}/rollback", rollback)
    add_nav(app, NavItem("/groups", "Groups", READ_ROLES, "nav-groups"))
    add_nav(app, NavItem("/timetable", "Timetable", READ_ROLES, "nav-timetable"))
    add_nav(app, NavItem("/revisions", "Revisions", READ_ROLES, "nav-revisions"))

