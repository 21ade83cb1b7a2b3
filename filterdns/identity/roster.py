"""The pupil roster: which pupil or device an encrypted-DNS client id stands for, and its group.

A school exports its roster from the MIS as CSV with the columns ``pupil_id``,
``display_name``, ``group``, ``email`` and ``device_ids`` (several ids separated by spaces or
semicolons). A row may leave ``pupil_id`` empty to describe a shared device. A client id is
matched against, in this order: pupil ids, device ids, emails, and ChromeOS's salted hashes
of the emails and device ids (see ``hashing``). Ids are compared without regard to case (DoT
server names are case-insensitive, and hex hashes come in either case).

An id that matches nothing still gets a group: the one set for unknown encrypted clients,
by default the strictest pupil group (``server.encrypted.strictest_group``), never the
staff's.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filterdns.identity.hashing import chromeos_hash, log_id
from filterdns.private_files import private_dir, private_file

COLUMNS = ("pupil_id", "display_name", "group", "email", "device_ids")
MAX_ROWS = 200_000
MAX_ID_LENGTH = 128
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
_HEADER_ALIASES = {"pupil": "pupil_id", "id": "pupil_id", "name": "display_name", "devices": "device_ids",
                   "device_id": "device_ids", "e_mail": "email"}


class RosterError(ValueError):
    """A roster file that cannot be used; ``problems`` are ``line N: what is wrong`` lines."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a query over DoH or DoT, as far as policy and events are concerned.

    ``label`` is what events carry: the pupil id, ``device:<id>`` for a device that belongs to
    no pupil, or ``unknown:<hash>`` (never the id itself) for an id the roster lacks."""

    label: str
    group: str
    known: bool


@dataclass(frozen=True, slots=True)
class RosterEntry:
    pupil_id: str
    display_name: str
    group: str
    email: str
    device_ids: tuple[str, ...]


def _header_key(text: str) -> str:
    key = re.sub(r"[\s-]+", "_", text.strip().lower())
    return _HEADER_ALIASES.get(key, key)


def parse_roster(text: str, groups: Collection[str]) -> list[RosterEntry]:
    """Read roster CSV; every problem is reported at once, with its line number."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise RosterError(["the roster is empty: the first line must name the columns " + ", ".join(COLUMNS)])
    header = [_header_key(cell) for cell in rows[0]]
    missing = [name for name in ("group",) if name not in header]
    if missing or not {"pupil_id", "device_ids"} & set(header):
        raise RosterError([f"line 1: the columns must include group and pupil_id or device_ids (found: {', '.join(rows[0])})"])
    if len(rows) - 1 > MAX_ROWS:
        raise RosterError([f"the roster has {len(rows) - 1} rows; at most {MAX_ROWS} are accepted"])
    problems: list[str] = []
    entries: list[RosterEntry] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)}
        entry = RosterEntry(
            pupil_id=cells.get("pupil_id", ""),
            display_name=cells.get("display_name", ""),
            group=cells.get("group", ""),
            email=cells.get("email", "").lower(),
            device_ids=tuple(d for d in re.split(r"[\s;,]+", cells.get("device_ids", "")) if d),
        )
        problems.extend(f"line {number}: {problem}" for problem in _check_entry(entry, groups))
        for key in _clear_keys(entry):
            if key in seen:
                problems.append(f"line {number}: the id {key!r} is already used on line {seen[key]}")
            seen.setdefault(key, number)
        entries.append(entry)
    if problems:
        raise RosterError(problems)
    return entries


def _check_entry(entry: RosterEntry, groups: Collection[str]) -> list[str]:
    problems = []
    if not entry.pupil_id and not entry.device_ids:
        problems.append("a row needs a pupil id or at least one device id")
    if entry.group not in groups:
        problems.append(f"unknown group {entry.group!r} (known: {', '.join(sorted(groups))})")
    for value in (entry.pupil_id, *entry.device_ids):
        if value and (len(value) > MAX_ID_LENGTH or not _ID.match(value)):
            problems.append(f"{value!r} is not a usable id: letters, digits, '.', '_', '-', '@', '+' only")
    if entry.email and "@" not in entry.email:
        problems.append(f"{entry.email!r} is not an email address")
    return problems


def _clear_keys(entry: RosterEntry) -> Iterable[str]:
    if entry.pupil_id:
        yield entry.pupil_id.lower()
    yield from (device.lower() for device in entry.device_ids)
    if entry.email:
        yield entry.email


def roster_csv(entries: Iterable[RosterEntry]) -> str:
    """The roster as stored: the same columns in a fixed order, one row per entry."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in entries:
        writer.writerow((e.pupil_id, e.display_name, e.group, e.email, " ".join(e.device_ids)))
    return out.getvalue()


class Roster:
    """Client id → ``Identity``: plain dictionary look-ups, built once per roster change."""

    def __init__(self, entries: Sequence[RosterEntry], *, salt: str, unknown_group: str):
        self.entries = tuple(entries)
        self.unknown_group = unknown_group
        self._ids: dict[str, Identity] = {}
        for entry in self.entries:
            pupil = Identity(entry.pupil_id, entry.group, True) if entry.pupil_id else None
            if pupil is not None:
                self._ids[entry.pupil_id.lower()] = pupil
            for device in entry.device_ids:
                identity = pupil or Identity(f"device:{device}", entry.group, True)
                self._ids[device.lower()] = identity
                self._ids[chromeos_hash(device, salt).lower()] = identity
            if entry.email:
                identity = pupil or Identity(f"device:{entry.device_ids[0]}", entry.group, True)
                self._ids[entry.email] = identity
                self._ids[chromeos_hash(entry.email, salt).lower()] = identity

    def __len__(self) -> int:
        return len(self.entries)

    def identify(self, client_id: str) -> Identity:
        """The identity for ``client_id``. A ChromeOS template may join several hashed
        placeholders with '-' (``${USER_EMAIL}-${DEVICE_DIRECTORY_ID}``): when the whole id
        is unknown, its parts are tried in order."""
        key = client_id.lower()
        identity = self._ids.get(key)
        if identity is not None:
            return identity
        if "-" in key:
            for part in key.split("-"):
                identity = self._ids.get(part)
                if identity is not None:
                    return identity
        return Identity(f"unknown:{log_id(client_id)}", self.unknown_group, False)


def load_roster(path: Path, groups: Collection[str], *, salt: str, unknown_group: str) -> Roster:
    """The roster stored at ``path``; an absent file is an empty roster."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    entries = parse_roster(text, groups) if text.strip() else []
    return Roster(entries, salt=salt, unknown_group=unknown_group)


def save_roster(path: Path, entries: Iterable[RosterEntry]) -> None:
    """Replace the stored roster atomically: a reader sees the old file or the new one. It
    holds pupils' names and mail addresses, so it is for the service's own user only (0600
    in a 0700 folder), like everything else in the data directory."""
    private_dir(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    private_file(temporary)
    temporary.write_text(roster_csv(entries), encoding="utf-8")
    os.replace(temporary, path)
