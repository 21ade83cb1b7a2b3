"""Delivering the outbox: mail over SMTP (``smtp``), JSON webhooks over HTTP (``webhook``),
and the background job that claims due messages and records what happened
(``delivery``). Digests and alerts only queue messages in the store; this package is the
one place that talks to mail servers and webhook receivers."""

from __future__ import annotations


class DeliveryError(Exception):
    """A message could not be delivered. ``reason`` is short and meant for people (it is
    shown in the console's outbox); ``permanent`` says that trying again cannot help
    (the mail server refused the recipient), so the message fails at once."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
