"""Logging a store outage once, however often the failing work is retried.

Background work that talks to the store (the district-wide jobs, following the policy
revisions) retries every few seconds, or twice a second, while the store is down. One line
when the outage starts and one when it ends say all there is to say; a line per attempt
would bury everything else in the log.
"""

from __future__ import annotations

import logging


class StoreOutage:
    """Whether an outage of one store has been reported, shared by everything that uses it
    (the event sink, policy sync, the district-wide jobs, retention). One store stopping
    fails all of them within seconds; the operator needs one WARNING and one recovery line
    for it, not one pair per part of the program. Each part still logs its own lines at
    DEBUG level."""

    __slots__ = ("reporter",)

    def __init__(self) -> None:
        self.reporter: object | None = None  # who logged the WARNING of the outage in progress

    def claim(self, reporter: object) -> bool:
        """True if ``reporter`` is the first to see this outage, and so should report it."""
        if self.reporter is None:
            self.reporter = reporter
            return True
        return self.reporter is reporter

    def release(self, reporter: object) -> bool:
        """True if ``reporter`` reported the outage, and so should report its end."""
        if self.reporter is reporter:
            self.reporter = None
            return True
        return False


class OutageLog:
    """Logs the first failure of a streak as a warning and the success ending it as info.
    ``failing``: whether the latest attempt failed. With a ``shared`` store outage, only the
    first part to see it warns (and reports the end); the others log at DEBUG level."""

    __slots__ = ("_log", "_shared", "failing")

    def __init__(self, log: logging.Logger, shared: StoreOutage | None = None) -> None:
        self._log = log
        self._shared = shared
        self.failing = False

    def failed(self, message: str, *args: object) -> None:
        """An attempt failed: log ``message % args`` if it starts a streak."""
        if not self.failing:
            reports = self._shared is None or self._shared.claim(self)
            self._log.log(logging.WARNING if reports else logging.DEBUG, message, *args)
        self.failing = True

    def recovered(self, message: str, *args: object) -> None:
        """An attempt worked: log ``message % args`` if it ends a streak."""
        if self.failing:
            reported = self._shared is None or self._shared.release(self)
            self._log.log(logging.INFO if reported else logging.DEBUG, message, *args)
        self.failing = False
