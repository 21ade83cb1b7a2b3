"""Set-up help for encrypted DNS: what each platform needs so that a device names its pupil.

* ChromeOS: the policy JSON for the Admin console (``DnsOverHttpsTemplatesWithIdentifiers``
  plus ``DnsOverHttpsSalt``), the same for every organisational unit: ChromeOS fills in the
  signed-in user's hashed email, and the roster says whose it is and which group applies.
* Apple (iPad, iPhone, Mac): a configuration profile with a DNS Settings payload
  (``com.apple.dnsSettings.managed``, DNSProtocol HTTPS), one per pupil or device.
* Windows 11: ``netsh`` commands that register the DoH template for the service's addresses.
* Android: the Private DNS host name ``<id>.<hostname>`` (needs an id that is a DNS label).

Everything here is derived from the config and an id; nothing is stored.
"""

from __future__ import annotations

import plistlib
import re
import uuid
from urllib.parse import quote

from filterdns.identity.hashing import DEVICE_DIRECTORY_ID, USER_EMAIL

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def doh_url(hostname: str, client_id: str = "") -> str:
    """The DoH URL naming ``client_id`` (the bare URL without one)."""
    base = f"https://{hostname}/dns-query"
    return f"{base}/{quote(client_id, safe='@.+-_')}" if client_id else base


def chromeos_policy(hostname: str, salt: str) -> dict[str, str]:
    """The Chrome policies for an organisational unit of pupils (user or device policy).
    With the user's hash first, a signed-in pupil is named by their email; on a shared
    device with nobody known, the device's directory id still may be."""
    template = f"{doh_url(hostname)}/{USER_EMAIL}-{DEVICE_DIRECTORY_ID}{{?dns}}"
    return {
        "DnsOverHttpsMode": "secure",
        "DnsOverHttpsTemplatesWithIdentifiers": template,
        "DnsOverHttpsSalt": salt,
    }


def android_hostname(hostname: str, client_id: str) -> str | None:
    """Android's Private DNS name for ``client_id``, or None when the id cannot be a DNS
    label (an email address, an id longer than 63 characters)."""
    label = client_id.lower()
    return f"{label}.{hostname}" if _LABEL.match(label) else None


def windows_commands(hostname: str, client_id: str, addresses: tuple[str, ...]) -> list[str]:
    """Commands for an elevated prompt on Windows 11: the DoH template for each of the
    service's addresses, with no fallback to plain DNS. Windows then speaks DoH to those
    addresses wherever they are the adapter's DNS servers (set by DHCP or by hand)."""
    url = doh_url(hostname, client_id)
    return [
        f"netsh dns add encryption server={address} dohtemplate={url} autoupgrade=yes udpfallback=no"
        for address in addresses
    ]


def apple_profile(hostname: str, client_id: str, display_name: str, addresses: tuple[str, ...]) -> bytes:
    """A ``.mobileconfig`` (XML property list) that sends every DNS query of the device to
    the service over HTTPS, named as ``client_id``. The identifiers are stable, so a new
    download replaces an installed profile instead of adding a second one."""
    identifier = f"{'.'.join(reversed(hostname.split('.')))}.encrypted-dns"
    stable = uuid.uuid5(uuid.NAMESPACE_URL, doh_url(hostname, client_id))
    dns_settings: dict[str, object] = {"DNSProtocol": "HTTPS", "ServerURL": doh_url(hostname, client_id)}
    if addresses:
        dns_settings["ServerAddresses"] = list(addresses)
    payload = {
        "PayloadType": "com.apple.dnsSettings.managed",
        "PayloadIdentifier": f"{identifier}.dns",
        "PayloadUUID": str(uuid.uuid5(stable, "dns")).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": f"School DNS filter ({display_name})",
        "DNSSettings": dns_settings,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(stable).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": f"School DNS filter ({display_name})",
        "PayloadDescription": f"Sends this device's DNS queries to {hostname} over HTTPS, filtered for {display_name}.",
        "PayloadScope": "System",
        "PayloadContent": [payload],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
