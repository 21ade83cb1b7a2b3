"""Store operations for safeguarding alerts: finding the blocked lookups that count for an
alert rule, and keeping one ``alerts`` row per burst of them (schema version 3).

A lookup counts for a rule when it was blocked and either its category is one of the rule's,
or the rule watches bypass attempts and it is one: a lookup in the ``bypass`` category
(DoH, VPN and proxy services) or of a canary name (``use-application-dns.net``, iCloud
Private Relay...), which the policy engine blocks with the reason ``bypass-protection`` and
no category. Canary lookups are labelled ``bypass`` in an alert's categories.

The evaluator (``filterdns.alerts.evaluator``) decides what a burst is; the store only
answers its questions and keeps the rows, so that every decision rests on the database and
survives restarts. "Uncovered" lookups are those later than the last alert of the same rule
and subject: the ones no alert has accounted for yet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from filterdns.config.model import AlertRule, AlertSubject
from filterdns.store.base import Row, StoreBase, current_time, marks

AlertStatus = Literal["open", "acknowledged"]

BYPASS_CATEGORY = "bypass"
# The policy engine's reason for a canary name (filterdns.policy.engine.BYPASS_NAMES): such a
# lookup is recorded as verdict "blocked", this reason, and no category.
BYPASS_REASON = "bypass-protection"

# Subjects per statement when fetching lookups: keeps the IN list far below both backends'
# limits on parameters.
SUBJECT_CHUNK = 500
# Lookups fetched per chunk of subjects in one pass: a bound on memory if something floods.
ATTEMPT_LIMIT = 50_000

# The column that names a rule's subject; never user input, so safe to put into SQL.
_SUBJECT_COLUMN: dict[str, str] = {"client": "client", "group": "group_name", "pupil": "pupil"}
# The category an alert records for a lookup (the same rule as ``attempt_category``).
_CATEGORY_SQL = f"CASE WHEN reason = '{BYPASS_REASON}' THEN '{BYPASS_CATEGORY}' ELSE category END"
_ALERT_COLUMNS = (
    'id, rule, subject_kind, subject, group_name AS "group", client, mac, categories, '
    "first_time, last_time, attempts, created, node, acknowledged_by, acknowledged_at, note"
)


@dataclass(frozen=True, slots=True)
class Alert:
    """One burst of matching blocked lookups by one subject (a client address, or a whole
    group) under one rule. ``client``/``mac`` are "" when unknown or when several devices
    took part (a group's alert); ``categories`` are what the attempts were blocked as."""

    id: int
    rule: str
    subject_kind: AlertSubject
    subject: str
    group: str
    client: str
    mac: str
    categories: tuple[str, ...]
    first_time: float
    last_time: float
    attempts: int
    created: float
    node: str
    acknowledged_by: str | None
    acknowledged_at: float | None
    note: str

    @property
    def open(self) -> bool:
        return self.acknowledged_at is None


@dataclass(frozen=True, slots=True)
class AlertCandidate:
    """A subject with at least a rule's threshold of uncovered matching lookups in a span."""

    subject: str
    attempts: int
    first_time: float
    last_time: float


@dataclass(frozen=True, slots=True)
class AlertAttempt:
    """One blocked lookup that counts for a rule (which name it was is left in the query log)."""

    id: int
    time: float
    subject: str
    group: str
    client: str
    mac: str
    category: str  # the matched category; "bypass" for a canary name


def attempt_category(reason: str, category: str) -> str:
    """The category an alert records for a blocked lookup: ``bypass`` for a canary name."""
    return BYPASS_CATEGORY if reason == BYPASS_REASON else category


def _alert(row: Row) -> Alert:
    row["categories"] = tuple(json.loads(row["categories"]))
    return Alert(**row)


def _matching(rule: AlertRule) -> tuple[str, list[Any]]:
    """The SQL condition, over ``query_events``, for a lookup that counts for ``rule``."""
    categories = list(rule.categories)
    if rule.bypass and BYPASS_CATEGORY not in categories:
        categories.append(BYPASS_CATEGORY)
    alternatives = [f"category IN ({marks(categories)})"] if categories else []
    if rule.bypass:
        alternatives.append(f"reason = '{BYPASS_REASON}'")
    clause = f"verdict = 'blocked' AND ({' OR '.join(alternatives) or '1 = 0'})"
    params: list[Any] = list(categories)
    if rule.groups:
        clause += f" AND group_name IN ({marks(rule.groups)})"
        params.extend(rule.groups)
    if rule.per == "pupil":
        clause += " AND pupil <> ''"  # lookups by nobody the roster names are nobody's burst
    return clause, params


def _uncovered(rule: AlertRule, column: str) -> tuple[str, list[Any]]:
    """The SQL condition for a lookup later than the subject's last alert under ``rule``."""
    condition = (
        f"time > coalesce((SELECT max(a.last_time) FROM alerts a WHERE a.rule = ? "
        f"AND a.subject_kind = ? AND a.subject = e.{column}), 0)"
    )
    return condition, [rule.name, rule.per]


class AlertQueries(StoreBase):
    """The ``alerts`` table (schema version 3), and the lookups alert rules count."""

    # --- what the evaluator asks ----------------------------------------------------------

    async def alert_candidates(self, rule: AlertRule, *, since: float, until: float) -> list[AlertCandidate]:
        """Subjects (client addresses, or groups, as ``rule.per`` says) with at least
        ``rule.threshold`` uncovered matching blocked lookups in ``since <= time < until``,
        restricted to ``rule.groups`` when set. Ordered by subject."""
        column = _SUBJECT_COLUMN[rule.per]
        matching, params = _matching(rule)
        uncovered, uncovered_params = _uncovered(rule, column)
        rows = await self._query(
            f"SELECT {column} AS subject, count(*) AS attempts, min(time) AS first_time, "
            f"max(time) AS last_time FROM query_events e WHERE {matching} AND time >= ? AND time < ? "
            f"AND {uncovered} GROUP BY {column} HAVING count(*) >= ? ORDER BY 1",
            [*params, since, until, *uncovered_params, rule.threshold],
        )
        return [AlertCandidate(**row) for row in rows]

    async def alert_attempts(
        self, rule: AlertRule, *, subjects: Sequence[str], since: float, until: float
    ) -> list[AlertAttempt]:
        """The uncovered matching lookups of ``subjects`` in ``since <= time < until``,
        oldest first (per subject; at most ``ATTEMPT_LIMIT`` per ``SUBJECT_CHUNK`` subjects)."""
        column = _SUBJECT_COLUMN[rule.per]
        matching, params = _matching(rule)
        uncovered, uncovered_params = _uncovered(rule, column)
        attempts: list[AlertAttempt] = []
        for start in range(0, len(subjects), SUBJECT_CHUNK):
            chunk = list(subjects[start : start + SUBJECT_CHUNK])
            rows = await self._query(
                f'SELECT id, time, {column} AS subject, group_name AS "group", client, mac, '
                f"{_CATEGORY_SQL} AS category FROM query_events e WHERE {matching} "
                f"AND time >= ? AND time < ? AND {column} IN ({marks(chunk)}) AND {uncovered} "
                "ORDER BY time, id LIMIT ?",
                [*params, since, until, *chunk, *uncovered_params, ATTEMPT_LIMIT],
            )
            attempts.extend(AlertAttempt(**row) for row in rows)
        return attempts

    async def recent_alerts(self, rule: str, subject_kind: AlertSubject, *, since: float) -> list[Alert]:
        """Alerts of ``rule`` about ``subject_kind`` subjects whose last attempt is at or after
        ``since``, oldest last attempt first (so the last one per subject is its latest)."""
        rows = await self._query(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE rule = ? AND subject_kind = ? AND last_time >= ? "
            "ORDER BY last_time, id",
            [rule, subject_kind, since],
        )
        return [_alert(row) for row in rows]

    # --- writing --------------------------------------------------------------------------

    async def create_alert(
        self, *, rule: str, subject_kind: AlertSubject, subject: str, group: str, client: str, mac: str,
        categories: Sequence[str], first_time: float, last_time: float, attempts: int, window: float,
        now: float | None = None,
    ) -> Alert | None:  # fmt: skip
        """Record a new burst. ``None``, and nothing written, if an alert of the same rule and
        subject already reaches within ``window`` seconds of ``first_time``: then this is
        that burst going on, and a second evaluator (a lease handed over mid-pass) must not
        raise it again. One statement, so the check and the insert cannot be split."""
        if subject_kind not in _SUBJECT_COLUMN:
            raise ValueError(f"unknown alert subject kind {subject_kind!r}")
        rows = await self._query(
            "INSERT INTO alerts (rule, subject_kind, subject, group_name, client, mac, categories, "
            "first_time, last_time, attempts, created, node, note) "
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '' WHERE NOT EXISTS (SELECT 1 FROM alerts "
            "WHERE rule = ? AND subject_kind = ? AND subject = ? AND last_time >= ?) "
            f"RETURNING {_ALERT_COLUMNS}",
            [rule, subject_kind, subject, group, client, mac, json.dumps(list(categories)),
             float(first_time), float(last_time), attempts, current_time(now), self.node,
             rule, subject_kind, subject, float(first_time) - window],
        )  # fmt: skip
        return _alert(rows[0]) if rows else None

    async def extend_alert(
        self, alert_id: int, *, attempts: int, last_time: float, categories: Sequence[str], client: str, mac: str
    ) -> Alert | None:
        """Add ``attempts`` later lookups to an alert's burst, which now lasts until
        ``last_time``. ``None`` if the alert is gone or already reaches ``last_time`` (the
        same lookups are never counted twice)."""
        rows = await self._query(
            "UPDATE alerts SET attempts = attempts + ?, last_time = ?, categories = ?, client = ?, mac = ? "
            f"WHERE id = ? AND last_time < ? RETURNING {_ALERT_COLUMNS}",
            [attempts, float(last_time), json.dumps(list(categories)), client, mac, alert_id, float(last_time)],
        )
        return _alert(rows[0]) if rows else None

    async def acknowledge_alert(
        self, alert_id: int, *, by: str, note: str, now: float | None = None
    ) -> Alert | None:
        """Acknowledge an open alert with a note; ``None`` if there is no such open alert,
        so two members of staff acknowledging at once cannot both win."""
        rows = await self._query(
            "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ?, note = ? "
            f"WHERE id = ? AND acknowledged_at IS NULL RETURNING {_ALERT_COLUMNS}",
            [by, current_time(now), note, alert_id],
        )
        return _alert(rows[0]) if rows else None

    async def delete_alerts_before(self, cutoff: float) -> int:
        """Retention: delete alerts raised before ``cutoff``, open or not; returns how many."""
        return await self._execute("DELETE FROM alerts WHERE created < ?", [cutoff])

    # --- reading --------------------------------------------------------------------------

    async def get_alert(self, alert_id: int) -> Alert | None:
        rows = await self._query(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", [alert_id])
        return _alert(rows[0]) if rows else None

    async def list_alerts(
        self, *, status: AlertStatus | None = None, created_since: float | None = None,
        limit: int = 50, before_id: int | None = None,
    ) -> list[Alert]:  # fmt: skip
        """Alerts newest first, optionally only open or acknowledged ones, or those raised at
        or after ``created_since``; ``before_id`` pages back from there."""
        clauses: list[str] = []
        params: list[Any] = []
        if status == "open":
            clauses.append("acknowledged_at IS NULL")
        elif status == "acknowledged":
            clauses.append("acknowledged_at IS NOT NULL")
        elif status is not None:
            raise ValueError(f"unknown alert status {status!r}")
        if created_since is not None:
            clauses.append("created >= ?")
            params.append(created_since)
        rows = await self._newest_first(
            f"SELECT {_ALERT_COLUMNS} FROM alerts", clauses, params, limit=limit, before_id=before_id
        )
        return [_alert(row) for row in rows]

    async def open_alert_count(self) -> int:
        rows = await self._query("SELECT count(*) AS n FROM alerts WHERE acknowledged_at IS NULL", [])
        return int(rows[0]["n"])
