"""Logging a store outage once, however often the failing work is retried.

Background work that talks to the store (the district-wide jobs, following the policy
revisions) retries every few seconds, or twice a second, while the store is down. One line
when the outage starts and one when it ends say all there is to say; a line per attempt
would bury everything else in the log.
"""

from __future__ import annotations

import logging


class OutageLog:
    """Logs the first failure of a streak as a warning and the success ending it as info.
    ``failing``: whether the latest attempt failed."""

    __slots__ = ("_log", "failing")

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self.failing = False

    def failed(self, message: str, *args: object) -> None:
        """An attempt failed: log ``message % args`` if it starts a streak."""
        if not self.failing:
            self._log.warning(message, *args)
        self.failing = True

    def recovered(self, message: str, *args: object) -> None:
        """An attempt worked: log ``message % args`` if it ends a streak."""
        if self.failing:
            self._log.info(message, *args)
        self.failing = False
