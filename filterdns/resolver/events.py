"""The record of one answered query, handed from the query path to logging and metrics.

One ``QueryEvent`` is built per query, so it is a slotted dataclass: construction is a
plain ``__init__`` storing fourteen attributes (about a microsecond), with no per-instance
``__dict__``. Consumers treat events as immutable once recorded; they are not frozen
because ``frozen=True`` makes construction several times slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dnslib import QTYPE, RCODE

Verdict = Literal["allowed", "blocked", "rewritten", "error"]
Transport = Literal["udp", "tcp", "doh", "dot"]

# Plain dicts: a dict lookup is cheaper than dnslib's Bimap and lets us pick the fallback.
_QTYPE_NAMES: dict[int, str] = dict(QTYPE.forward)
_RCODE_NAMES: dict[int, str] = dict(RCODE.forward)


def qtype_name(qtype: int) -> str:
    """Mnemonic for a query type (``"AAAA"``), or the RFC 3597 form ``"TYPE123"``."""
    return _QTYPE_NAMES.get(qtype) or f"TYPE{qtype}"


def rcode_name(rcode: int) -> str:
    """Mnemonic for a response code (``"NXDOMAIN"``), or ``"RCODE23"`` when unknown."""
    return _RCODE_NAMES.get(rcode) or f"RCODE{rcode}"


@dataclass(slots=True)
class QueryEvent:
    """What happened to one query.

    ``reason`` says why the verdict was reached (``"category:adult"``, ``"deny-list"``,
    ``"allow-list"``, ``"safe-search"``, ``"bypass-protection"`` or ``""`` for an ordinary
    answer); ``category`` is the matched category, if any. ``answered_by`` is the upstream
    label, ``"cache"``, ``"policy"``, ``"stale"`` or ``""`` when nobody answered.
    """

    time: float  # unix seconds
    client: str  # IP address as text
    group: str
    name: str  # lowercase, dotted, no trailing dot
    qtype: int
    verdict: Verdict
    reason: str
    category: str
    rcode: int
    latency_ms: float
    answered_by: str
    transport: Transport
    mac: str = ""
    # The pupil (or ``device:<id>``) a DoH/DoT client named, from the roster; "" when unknown.
    pupil: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for the query log; numeric codes also appear as their names so
        the log can be read (and grepped) without a DNS reference at hand."""
        return {
            "time": self.time,
            "client": self.client,
            "mac": self.mac,
            "group": self.group,
            "name": self.name,
            "qtype": self.qtype,
            "qtype_name": qtype_name(self.qtype),
            "verdict": self.verdict,
            "reason": self.reason,
            "category": self.category,
            "rcode": self.rcode,
            "rcode_name": rcode_name(self.rcode),
            "latency_ms": round(self.latency_ms, 3),
            "answered_by": self.answered_by,
            "transport": self.transport,
            "pupil": self.pupil,
        }
