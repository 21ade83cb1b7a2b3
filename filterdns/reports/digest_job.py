"""The background job that queues the weekly digest mails.

Once the week's send moment (``reports.digest_day`` at ``reports.digest_time``, in the
school's time zone, so it follows daylight saving time) has passed, the node holding the
district-wide "digest" lease composes one digest per parent and puts it in the outbox,
which delivers it (``filterdns.notify.delivery``) and retries failures. Each digest's
outbox key names the week and the parent, so however often a pass runs, on however many
nodes, before or after a restart, a parent gets one digest a week. A service that was
down at the send moment queues the digests when it comes back, unless that is more than
``LATE_LIMIT`` after the moment: a week-old summary is no longer worth a mail.

Every pass until then looks for parents it has not handled this week: one added after the
send moment (or given a class, or who turned the digest back on) gets the week's digest on
the next pass, not a week later. A pass composes only for those, so the passes after the
send moment cost a listing of the accounts.

Who gets one: parent accounts that are enabled, are named by an email address, have not
turned the digest off, and see at least one class group with a report for the week.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from filterdns.accounts.rules import EMAIL
from filterdns.config.model import WEEKDAYS, Config, ReportsConfig
from filterdns.policy.schedule import wall_to_timestamp
from filterdns.reports.digest import DigestComposer, digest_week
from filterdns.reports.weekly import Week
from filterdns.store import DAY, Store, User
from filterdns.store.lease import LeasedJob
from filterdns.store.parents import ParentProfile

log = logging.getLogger("filterdns.digest")

LEASE = "digest"
INTERVAL = 60.0  # seconds between passes
LEASE_TTL = 3 * INTERVAL  # another node takes over this long after the holder stopped
LATE_LIMIT = 6 * DAY  # no digest goes out later than this after its send moment

State = Literal["off", "standby", "too-late", "done", "queued"]


@dataclass(frozen=True, slots=True)
class DigestRun:
    """What one pass did. ``state``: "off" (the digest or mail is not configured),
    "standby" (another node holds the lease), "too-late" (the last send moment is more
    than ``LATE_LIMIT`` ago), "done" (every parent was handled this week already), or
    "queued": ``queued`` digests went into the outbox, ``already`` were there before
    (queued before a restart, or by another node)."""

    state: State
    week: Week | None = None
    queued: int = 0
    already: int = 0


def last_send_moment(reports: ReportsConfig, zone: ZoneInfo, now: float) -> tuple[date, float]:
    """The latest send moment at or before ``now``: its local day and its POSIX time. The
    moment is the wall-clock time on that day, so it stays 07:30 across a DST change (a
    time that does not exist that day is the instant the clocks jump)."""
    today = datetime.fromtimestamp(now, zone).date()
    day = today - timedelta(days=(today.weekday() - WEEKDAYS.index(reports.digest_day)) % 7)
    moment = _send_moment(reports, day, zone)
    if moment > now:
        day -= timedelta(weeks=1)
        moment = _send_moment(reports, day, zone)
    return day, moment


def next_send_moment(reports: ReportsConfig, zone: ZoneInfo, now: float) -> tuple[date, float]:
    """The first send moment after ``now``: its local day and its POSIX time."""
    day = last_send_moment(reports, zone, now)[0] + timedelta(weeks=1)
    return day, _send_moment(reports, day, zone)


def _send_moment(reports: ReportsConfig, day: date, zone: ZoneInfo) -> float:
    return wall_to_timestamp(datetime.combine(day, datetime.strptime(reports.digest_time, "%H:%M").time()), zone)


# A parent's children with take-home devices, as (pupil id, name) pairs: the roster links
# them (``server/home_profiles``), which this layer does not know.
ChildrenAtHome = Callable[[str], Awaitable[Sequence[tuple[str, str]]]]


async def _none_at_home(parent: str) -> Sequence[tuple[str, str]]:
    return ()


class DigestJob(LeasedJob):
    """Queues each week's digests; ``config_provider`` returns the config in force (the
    policy, and with it the groups, can change while the service runs)."""

    def __init__(
        self, store: Store, config_provider: Callable[[], Config], *, interval: float = INTERVAL,
        children_at_home: ChildrenAtHome | None = None,
    ) -> None:  # fmt: skip
        super().__init__(store, LEASE, ttl=LEASE_TTL, interval=interval, log=log, what="weekly digests")
        self.config_provider = config_provider
        self.children_at_home = children_at_home or _none_at_home
        self._week: date | None = None  # the week ``_handled`` is about
        # (parent, their groups) whose digest this job queued, or found none for, this week:
        # a parent given another class is looked at again.
        self._handled: set[tuple[str, tuple[str, ...]]] = set()

    async def run_once(self, now: float | None = None) -> DigestRun:
        """One pass. Store errors propagate (``run_forever`` survives them)."""
        now = time.time() if now is None else now
        config = self.config_provider()
        if not (config.node.reports.digest and config.node.mail.enabled):
            return DigestRun("off")
        if not await self.lease.take(now):
            return DigestRun("standby")
        zone = ZoneInfo(config.policy.timezone)
        send_day, moment = last_send_moment(config.node.reports, zone, now)
        week = digest_week(send_day, zone)
        if now - moment > LATE_LIMIT:
            return DigestRun("too-late", week)
        if self._week != week.start:
            self._week, self._handled = week.start, set()
        recipients = [r for r in await self._recipients() if (r[0].name, r[0].groups) not in self._handled]
        if not recipients:
            return DigestRun("done", week)
        return await self._queue(config, week, recipients, now)

    async def _recipients(self) -> list[tuple[User, ParentProfile | None]]:
        """Parent accounts that get a digest: enabled, named by an email address, digest on."""
        profiles = {profile.user: profile for profile in await self.store.list_parent_profiles()}
        found = []
        for user in await self.store.list_users():
            if user.role != "parent" or user.disabled or not EMAIL.fullmatch(user.name):
                continue
            profile = profiles.get(user.name)
            if profile is None or profile.digest:
                found.append((user, profile))
        return found

    async def _queue(
        self, config: Config, week: Week, recipients: list[tuple[User, ParentProfile | None]], now: float
    ) -> DigestRun:
        composer = DigestComposer(self.store, config, week, now=now)
        queued = already = 0
        for user, profile in recipients:
            mail = await composer.compose(user, profile, await self.children_at_home(user.name))
            if mail is not None and await self.store.enqueue_message(
                dedup_key=mail.dedup_key, channel="email", kind="digest", recipient=mail.recipient,
                subject=mail.subject, body_text=mail.text, body_html=mail.html, headers=mail.headers, now=now,
            ):  # fmt: skip
                queued += 1
            elif mail is not None:
                already += 1
            self._handled.add((user.name, user.groups))  # after the store took it: a failed write is tried again
        if queued:
            log.info("queued %d weekly digest(s) for the week of %s", queued, week.start.isoformat())
        return DigestRun("queued", week, queued, already)

    async def _run_pass(self) -> bool:
        await self.run_once()
        return False
