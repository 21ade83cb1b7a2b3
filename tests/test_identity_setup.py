"""Set-up help for each platform: the ChromeOS policy, the Apple profile, Windows commands,
Android's host name."""

from __future__ import annotations

import plistlib

from filterdns.identity.hashing import fill_template
from filterdns.identity.setup import android_hostname, apple_profile, chromeos_policy, doh_url, windows_commands

HOST = "dns.school.example"


def test_the_chromeos_template_carries_the_users_and_the_devices_hash() -> None:
    policy = chromeos_policy(HOST, "riverside-2026")
    assert policy["DnsOverHttpsMode"] == "secure" and policy["DnsOverHttpsSalt"] == "riverside-2026"
    filled = fill_template(policy["DnsOverHttpsTemplatesWithIdentifiers"], "riverside-2026", email="a@b.test")
    assert filled.startswith(f"https://{HOST}/dns-query/") and filled.endswith("{?dns}")
    assert "$" not in filled


def test_the_apple_profile_is_a_dns_settings_payload_with_stable_ids() -> None:
    profile = plistlib.loads(apple_profile(HOST, "p-101", "Ann Example", ("192.0.2.53",)))
    [payload] = profile["PayloadContent"]
    assert profile["PayloadType"] == "Configuration"
    assert payload["PayloadType"] == "com.apple.dnsSettings.managed"
    assert payload["DNSSettings"] == {
        "DNSProtocol": "HTTPS", "ServerURL": f"https://{HOST}/dns-query/p-101", "ServerAddresses": ["192.0.2.53"],
    }
    again = plistlib.loads(apple_profile(HOST, "p-101", "Ann Example", ("192.0.2.53",)))
    other = plistlib.loads(apple_profile(HOST, "p-102", "Bob Example", ("192.0.2.53",)))
    assert again["PayloadUUID"] == profile["PayloadUUID"] != other["PayloadUUID"]


def test_windows_gets_one_template_per_server_address_and_no_fallback() -> None:
    assert windows_commands(HOST, "ann@school.example", ("192.0.2.53", "2001:db8::53")) == [
        f"netsh dns add encryption server=192.0.2.53 dohtemplate=https://{HOST}/dns-query/ann@school.example"
        " autoupgrade=yes udpfallback=no",
        f"netsh dns add encryption server=2001:db8::53 dohtemplate=https://{HOST}/dns-query/ann@school.example"
        " autoupgrade=yes udpfallback=no",
    ]


def test_android_needs_an_id_that_is_a_dns_label() -> None:
    assert android_hostname(HOST, "P-101") == f"p-101.{HOST}"
    assert android_hostname(HOST, "ann@school.example") is None
    assert android_hostname(HOST, "x" * 64) is None


def test_ids_are_escaped_in_urls() -> None:
    assert doh_url(HOST, "a b/c") == f"https://{HOST}/dns-query/a%20b%2Fc"
    assert doh_url(HOST) == f"https://{HOST}/dns-query"
