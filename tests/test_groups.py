"""Client to group: MAC first, then the longest matching network, then the default."""

from __future__ import annotations

import ipaddress

import pytest

from filterdns.config.model import GroupConfig
from filterdns.policy.groups import GroupResolver, normalize_mac


def net(text: str):
    return ipaddress.ip_network(text)


GROUPS = (
    GroupConfig("pupils", networks=(net("10.0.0.0/8"), net("2001:db8::/32"))),
    GroupConfig("year7", networks=(net("10.7.0.0/16"), net("2001:db8:7::/48"))),
    GroupConfig("year7-lab", networks=(net("10.7.3.0/24"),)),
    GroupConfig("printer", networks=(net("10.7.3.9/32"),)),
    GroupConfig("staff", networks=(net("192.168.1.0/24"),), macs=("aa:bb:cc:dd:ee:ff",)),
)


@pytest.fixture
def resolver() -> GroupResolver:
    return GroupResolver(GROUPS, "guests")


@pytest.mark.parametrize(
    "ip, group",
    [
        ("10.1.2.3", "pupils"),
        ("10.7.200.1", "year7"),
        ("10.7.3.1", "year7-lab"),
        ("10.7.3.9", "printer"),
        ("192.168.1.20", "staff"),
        ("172.16.0.1", "guests"),
        ("2001:db8:1::1", "pupils"),
        ("2001:db8:7:1::1", "year7"),
        ("2001:db9::1", "guests"),
        ("::ffff:10.7.3.1", "year7-lab"),  # IPv4-mapped is treated as IPv4
        ("::1", "guests"),
    ],
)
def test_longest_prefix_wins(resolver, ip, group):
    assert resolver.group_for(ip) == group
    assert resolver.group_for(ipaddress.ip_address(ip)) == group


def test_mac_wins_over_network(resolver):
    assert resolver.group_for("10.7.3.1", "aa:bb:cc:dd:ee:ff") == "staff"
    assert resolver.group_for("10.7.3.1", "AA-BB-CC-DD-EE-FF") == "staff"
    assert resolver.group_for("10.7.3.1", bytes.fromhex("aabbccddeeff")) == "staff"
    # An unknown or malformed MAC falls back to the address.
    assert resolver.group_for("10.7.3.1", "11:22:33:44:55:66") == "year7-lab"
    assert resolver.group_for("10.7.3.1", "not a mac") == "year7-lab"


def test_mac_lookup_does_not_poison_address_cache(resolver):
    assert resolver.group_for("10.7.3.1", "aa:bb:cc:dd:ee:ff") == "staff"
    assert resolver.group_for("10.7.3.1") == "year7-lab"


def test_first_group_keeps_a_duplicate_network():
    resolver = GroupResolver(
        (GroupConfig("a", networks=(net("10.0.0.0/24"),)), GroupConfig("b", networks=(net("10.0.0.0/24"),))), "d"
    )
    assert resolver.group_for("10.0.0.1") == "a"


def test_cache_is_bounded():
    resolver = GroupResolver(GROUPS, "guests", cache_size=8)
    for i in range(50):
        assert resolver.group_for(f"10.7.3.{i}") == ("printer" if i == 9 else "year7-lab")
    assert len(resolver._cache) <= 8


def test_no_networks_gives_default():
    assert GroupResolver((), "everyone").group_for("8.8.8.8") == "everyone"


def test_bad_address_raises(resolver):
    with pytest.raises(ValueError):
        resolver.group_for("10.7.3")


@pytest.mark.parametrize(
    "text",
    [
        "aa:bb:cc:dd:ee:ff",
        "AA-BB-CC-DD-EE-FF",
        "aabb.ccdd.eeff",
        "aabbccddeeff",
        b"\xaa\xbb\xcc\xdd\xee\xff",
        b"aa:bb:cc:dd:ee:ff",
    ],
)
def test_normalize_mac_forms(text):
    assert normalize_mac(text) == "aa:bb:cc:dd:ee:ff"


def test_normalize_mac_pads_short_octets():
    assert normalize_mac("a:b:c:d:e:f") == "0a:0b:0c:0d:0e:0f"


@pytest.mark.parametrize(
    "text", ["", "aa:bb:cc:dd:ee", "aa:bb-cc:dd:ee:ff", "gg:bb:cc:dd:ee:ff", b"\xaa\xbb", "aabb.ccdd"]
)
def test_normalize_mac_rejects(text):
    assert normalize_mac(text) is None
