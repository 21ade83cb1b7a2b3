"""Which group a client belongs to, by MAC address or by the longest matching network.

Runs once per query, so the answer is cached per client address, and the prefix match on a
miss only walks the prefix lengths that actually occur in the configuration (a handful),
each a single dict lookup on the integer network address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from filterdns.config.model import GroupConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAC_FORMS = (
    re.compile(r"([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2}):([0-9a-f]{1,2})"),
    re.compile(r"([0-9a-f]{1,2})-([0-9a-f]{1,2})-([0-9a-f]{1,2})-([0-9a-f]{1,2})-([0-9a-f]{1,2})-([0-9a-f]{1,2})"),
    re.compile(r"([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})"),
    re.compile(r"([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})"),
)


def normalize_mac(text: str | bytes) -> str | None:
    """``"aa:bb:cc:dd:ee:ff"`` from the usual spellings, or None if ``text`` is not a MAC.

    Accepts colon or dash separated octets (a leading zero may be missing, as some tools
    print them), Cisco dotted ``aabb.ccdd.eeff``, 12 bare hex digits, and the raw 6 bytes
    that arrive in an EDNS0 client-MAC option."""
    if isinstance(text, bytes):
        if len(text) == 6:
            return ":".join(f"{octet:02x}" for octet in text)
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    cleaned = text.strip().lower()
    for form in _MAC_FORMS:
        found = form.fullmatch(cleaned)
        if found:
            return ":".join(octet.zfill(2) for octet in found.groups())
    return None


class _PrefixTable:
    """Longest-prefix match for one address family: prefix length -> {network int: group}."""

    def __init__(self, bits: int):
        self._bits = bits
        self._by_length: dict[int, dict[int, str]] = {}
        self._walk: tuple[tuple[int, dict[int, str]], ...] = ()

    def add(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network, group: str) -> None:
        """Add a network; if it is already present the group added first keeps it."""
        table = self._by_length.setdefault(network.prefixlen, {})
        table.setdefault(int(network.network_address), group)
        self._walk = tuple(
            (self._mask(length), self._by_length[length]) for length in sorted(self._by_length, reverse=True)
        )

    def _mask(self, length: int) -> int:
        return ((1 << length) - 1) << (self._bits - length)

    def lookup(self, address: int) -> str | None:
        for mask, table in self._walk:
            group = table.get(address & mask)
            if group is not None:
                return group
        return None


class GroupResolver:
    """Maps a client (address, optional MAC) to a group name."""

    def __init__(self, groups: Iterable[GroupConfig], default_group: str, *, cache_size: int = 65_536):
        self.default_group = default_group
        self._macs: dict[str, str] = {}
        self._v4 = _PrefixTable(32)
        self._v6 = _PrefixTable(128)
        for group in groups:
            for mac in group.macs:
                normalized = normalize_mac(mac)
                if normalized is None:
                    raise ValueError(f"group {group.name}: '{mac}' is not a MAC address")
                self._macs.setdefault(normalized, group.name)
            for network in group.networks:
                (self._v4 if network.version == 4 else self._v6).add(network, group.name)
        self._cache: dict[str | IPAddress, str] = {}
        self._cache_size = cache_size

    def group_for(self, ip: str | IPAddress, mac: str | bytes | None = None) -> str:
        """The client's group: a known MAC wins, then the longest matching network, then the
        default group. ``ip`` may be text (cached as given) or an ``ipaddress`` object;
        unparsable text raises ValueError."""
        if mac is not None and self._macs:
            group = self._macs.get(mac) if isinstance(mac, str) else None
            if group is None:
                normalized = normalize_mac(mac)
                group = self._macs.get(normalized) if normalized else None
            if group is not None:
                return group
        group = self._cache.get(ip)
        if group is None:
            group = self._match(ipaddress.ip_address(ip) if isinstance(ip, str) else ip)
            if len(self._cache) >= self._cache_size:
                # Clearing beats per-entry eviction here: the working set (a school's
                # clients) refills in moments and the dict never degrades.
                self._cache.clear()
            self._cache[ip] = group
        return group

    def _match(self, address: IPAddress) -> str:
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is None:
                return self._v6.lookup(int(address)) or self.default_group
            address = mapped
        return self._v4.lookup(int(address)) or self.default_group
