"""Store operations for the devices behind the hourly counts: which distinct devices made
each hour's lookups of a group, by verdict and category, so that reports for families can
mask a figure that fewer than ``mask_below`` devices stand behind (one pupil's three
attempts must not read "3").

A device is the pupil a DoH/DoT client named, else its MAC, else its address, and it is
kept only as a pseudonym: an HMAC with a server secret of its own, cut to 64 bits (two
devices sharing one merely count as one, which masks more, never less). The rows are
written with the events and counts they stand behind, in the same transaction, and
deleted with those counts.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence
from typing import Any

from filterdns.resolver.events import QueryEvent
from filterdns.store.base import HOUR, Row, Where
from filterdns.store.server_secrets import SecretQueries

DEVICE_SECRET = "device-pseudonyms"
INSERT_DEVICE_SQL = (
    "INSERT INTO hourly_devices (hour, group_name, verdict, category, device) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_PSEUDONYM_CACHE_LIMIT = 50_000  # devices remembered between batches (cleared when full)


def device_of(event: QueryEvent) -> str:
    """Who asked, as precisely as the event says: the pupil, the MAC, else the address."""
    if event.pupil:
        return f"pupil:{event.pupil}"
    return f"mac:{event.mac}" if event.mac else f"ip:{event.client}"


class Pseudonyms:
    """Keyed pseudonyms of devices, remembered so a busy device is hashed once."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._known: dict[str, str] = {}

    def __call__(self, device: str) -> str:
        found = self._known.get(device)
        if found is None:
            if len(self._known) >= _PSEUDONYM_CACHE_LIMIT:
                self._known.clear()
            found = self._known[device] = hmac.new(self._key, device.encode(), hashlib.sha256).hexdigest()[:16]
        return found


def device_rows(events: Sequence[QueryEvent], pseudonym: Pseudonyms) -> list[tuple[Any, ...]]:
    """The distinct (hour, group, verdict, category, device) of a batch, in key order (so
    two writers lock overlapping keys in the same order)."""
    keys = {
        (int(e.time // HOUR) * HOUR, e.group, e.verdict, e.category, pseudonym(device_of(e))) for e in events
    }
    return sorted(keys)


class DeviceQueries(SecretQueries):
    """The ``hourly_devices`` table (written by ``EventQueries.insert_events``)."""

    _pseudonyms: Pseudonyms | None = None

    async def _device_pseudonyms(self) -> Pseudonyms:
        if self._pseudonyms is None:
            self._pseudonyms = Pseudonyms(await self.get_secret(DEVICE_SECRET, secrets.token_urlsafe(32)))
        return self._pseudonyms

    async def query_devices(self, since: float, until: float, *, group: str) -> list[Row]:
        """The devices behind ``group``'s counts of the hours starting in ``[since, until)``:
        rows of ``hour``, ``verdict``, ``category`` and ``device`` (a pseudonym)."""
        w = Where()
        w.equal("group_name", group)
        w.between("hour", math.ceil(since), math.ceil(until))
        return await self._query(f"SELECT hour, verdict, category, device FROM hourly_devices{w.sql()}", w.params)

    async def count_devices(self, since: float, until: float, *, group: str, verdict: str | None = None) -> int:
        """How many distinct devices made ``group``'s lookups (with ``verdict``, if given)
        in the hours starting in ``[since, until)``."""
        w = Where()
        w.equal("group_name", group)
        w.between("hour", math.ceil(since), math.ceil(until))
        w.equal("verdict", verdict)
        rows = await self._query(f"SELECT count(DISTINCT device) AS n FROM hourly_devices{w.sql()}", w.params)
        return int(rows[0]["n"])
