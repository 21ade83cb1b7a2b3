"""Who may use this resolver at all, and how fast.

A school resolver exposed to the internet by a misconfigured port-forward would otherwise
become an open resolver, a tool for reflection attacks. Only ``server.allow_networks`` are
answered; everyone else gets REFUSED. Response rate limiting per source address keeps one
flooding (or spoofed) source from drowning the others.
"""

from __future__ import annotations

import ipaddress

from filterdns.config.model import IPNetwork, RateLimitConfig

_CACHE_LIMIT = 65536


def _address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkSet:
    """Membership of source addresses in a set of networks, memoised per address string."""

    def __init__(self, networks: tuple[IPNetwork, ...]):
        self._networks = networks
        self._known: dict[str, bool] = {}

    def __contains__(self, peer: str) -> bool:
        known = self._known.get(peer)
        if known is None:
            address = _address(peer)
            known = address is not None and any(address in network for network in self._networks)
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            self._known[peer] = known
        return known


class RateLimiter:
    """A token bucket per source address. ``check`` answers "ok", "slip" (send a truncated
    reply so a real client retries over TCP) or "drop". TCP queries are never limited here:
    a TCP client has proven its address with the handshake."""

    __slots__ = ("_rate", "_burst", "_slip", "_buckets", "_exempt", "limited")

    def __init__(self, config: RateLimitConfig, exempt: NetworkSet):
        self._rate = config.queries_per_second
        self._burst = float(max(config.burst, 1))
        self._slip = config.slip
        # source -> [tokens, last refill time, limited replies so far]
        self._buckets: dict[str, list[float]] = {}
        self._exempt = exempt
        self.limited = 0

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def set_exempt(self, exempt: NetworkSet) -> None:
        """Follow a policy change of the trusted forwarders (they are never limited)."""
        self._exempt = exempt
        self._buckets.clear()

    def check(self, peer: str, now: float) -> str:
        bucket = self._buckets.get(peer)
        if bucket is None:
            if peer in self._exempt:
                return "ok"
            if len(self._buckets) >= _CACHE_LIMIT:
                self._forget_idle(now)
            bucket = self._buckets[peer] = [self._burst, now, 0.0]
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return "ok"
        bucket[0] = tokens
        bucket[2] += 1
        self.limited += 1
        if self._slip and int(bucket[2]) % self._slip == 0:
            return "slip"
        return "drop"

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled completely: they hold no information."""
        full_after = self._burst / self._rate
        for peer in [p for p, b in self._buckets.items() if now - b[1] > full_after]:
            del self._buckets[peer]
        if len(self._buckets) >= _CACHE_LIMIT:
            self._buckets.clear()
