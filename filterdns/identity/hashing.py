"""ChromeOS's hashed identifiers for DNS-over-HTTPS.

ChromeOS fills the ``DnsOverHttpsTemplatesWithIdentifiers`` policy's placeholders
(``${USER_EMAIL}``, ``${DEVICE_DIRECTORY_ID}``, ...) with SHA-256 over the
``DnsOverHttpsSalt`` policy's text followed by the value, written as upper-case hex; the salt
must be 8 to 32 characters (Chromium: chrome/browser/ash/net/dns_over_https/
templates_uri_resolver_impl.cc, ``FormatVariable`` and ``kMinSaltSize``/``kMaxSaltSize``).
Newer ChromeOS releases hash even without a salt, which is the same formula with "".
A roster's emails and device ids are hashed the same way so the ids in a URL can be matched
without ChromeOS ever sending an address in clear.
"""

from __future__ import annotations

import hashlib

MIN_SALT = 8
MAX_SALT = 32

# The template placeholders ChromeOS fills in, and the values we can match from a roster.
USER_EMAIL = "${USER_EMAIL}"
DEVICE_DIRECTORY_ID = "${DEVICE_DIRECTORY_ID}"


def chromeos_hash(value: str, salt: str) -> str:
    """What ChromeOS puts in place of a placeholder whose value is ``value``."""
    return hashlib.sha256((salt + value).encode("utf-8")).hexdigest().upper()


def check_salt(salt: str) -> None:
    """ChromeOS ignores the policy when the salt's length is out of range: refuse it early."""
    if salt and not MIN_SALT <= len(salt) <= MAX_SALT:
        raise ValueError(f"the ChromeOS salt must be {MIN_SALT} to {MAX_SALT} characters long")


def fill_template(template: str, salt: str, *, email: str = "", device_id: str = "") -> str:
    """A template as ChromeOS fills it for a signed-in user (and an enrolled device)."""
    filled = template.replace(USER_EMAIL, chromeos_hash(email, salt))
    return filled.replace(DEVICE_DIRECTORY_ID, chromeos_hash(device_id, salt))


def log_id(client_id: str) -> str:
    """A short, stable stand-in for an id in logs and events: ids may be email addresses or
    the ids a school printed on a device, which logs must not carry in clear."""
    return hashlib.sha256(client_id.encode("utf-8", "surrogateescape")).hexdigest()[:12]
