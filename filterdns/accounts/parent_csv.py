"""Reading a school's list of parents: a CSV of ``parent_email, child_name, class_group``,
as exported from a school's management system or typed into a spreadsheet. An optional
``pupil_id`` column names the child in the roster (take-home devices): it lets the parent
set the child's home settings."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass, field

from filterdns.accounts.rules import email_problem

MAX_IMPORT_ROWS = 5000
MAX_CHILD_NAME = 100
CSV_COLUMNS = ("parent_email", "child_name", "class_group")
PUPIL_COLUMN = "pupil_id"  # optional


@dataclass(slots=True)
class ImportResult:
    """What a CSV import would do: children per parent email (file order), the first line
    naming each email, and the problems found, each starting with its line number."""

    children: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    pupils: dict[str, list[str]] = field(default_factory=dict)  # parent email -> roster pupil ids
    lines: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def child_name(text: str) -> str:
    return " ".join(text.split())


def parse_parent_csv(text: str, groups: Collection[str]) -> ImportResult:
    """Read a CSV of ``parent_email, child_name, class_group`` (a header row first; commas
    or semicolons, as spreadsheets in many countries write them). Every row is checked;
    one problem anywhere means nothing is imported, so a file is never half applied."""
    result = ImportResult()
    header = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    columns: dict[str, int] | None = None
    rows = 0
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if columns is None:
            names = [cell.strip().lower() for cell in record]
            missing = [c for c in CSV_COLUMNS if c not in names]
            if missing:
                result.errors.append(f"line {line}: the first row must name the columns {', '.join(CSV_COLUMNS)} "
                                     f"(missing: {', '.join(missing)})")  # fmt: skip
                return result
            columns = {c: names.index(c) for c in (*CSV_COLUMNS, PUPIL_COLUMN) if c in names}
            continue
        rows += 1
        if rows > MAX_IMPORT_ROWS:
            result.errors.append(f"line {line}: a file holds at most {MAX_IMPORT_ROWS} rows")
            return result
        cells = {c: record[i].strip() if i < len(record) else "" for c, i in columns.items()}
        email, child, group = cells["parent_email"].lower(), child_name(cells["child_name"]), cells["class_group"]
        pupil = cells.get(PUPIL_COLUMN, "")
        problems = [p for p in (email_problem(email),) if p]
        if not child:
            problems.append("the child's name is empty")
        elif len(child) > MAX_CHILD_NAME:
            problems.append(f"the child's name is longer than {MAX_CHILD_NAME} characters")
        if group not in groups:
            problems.append(f"there is no class group '{group}'")
        if problems:
            result.errors.append(f"line {line}: {'; '.join(problems)}")
            continue
        pairs = result.children.setdefault(email, [])
        result.lines.setdefault(email, line)
        if (child, group) not in pairs:
            pairs.append((child, group))
        if pupil and pupil not in result.pupils.setdefault(email, []):
            result.pupils[email].append(pupil)
    if columns is None:
        result.errors.append("the file is empty")
    return result
