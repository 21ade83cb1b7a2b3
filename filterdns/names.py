"""Domain names as people and lists write them, turned into the one form filterdns compares.

Block lists, config.yaml, the console's forms and the engine's explanations all meet the
same names in many spellings (``WWW.Example.com.``, ``münchen.de``, Squid's
``.example.com``); they all go through ``normalize_domain`` so that a name typed in the
console matches the same name in a list. It lives at the top of the package, below every
layer, because config, policy and the server all need it and it needs nothing of theirs.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 253  # presentation form without the trailing dot

_LABEL = r"[a-z0-9_-]{1,63}"
# Underscores are not valid in hostnames but real lists contain them (``_dmarc``-style and
# sloppy CDN names), and DNS itself allows them. A name whose last label is all digits is an IP
# address or garbage: no top-level domain is numeric.
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*(?![0-9]+$){_LABEL}")


def normalize_domain(text: str) -> str | None:
    """The lowercase ASCII (punycode) form of a domain name, or None if it is not one.

    Accepts surrounding whitespace, upper case, one trailing dot, one leading dot (Squid's
    ``.example.com``, used by UT1) and internationalised names. Rejects IP addresses, empty
    labels, labels over 63 and names over 253 characters.
    """
    name = text.strip().lower()
    if name.startswith("."):
        name = name[1:]
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(name) > MAX_NAME_LENGTH or _HOSTNAME.fullmatch(name) is None:
        return None
    return name


def domain_name(text: str) -> str:
    """``normalize_domain`` for input a person typed: ValueError in a plain sentence when
    ``text`` is not a domain name."""
    name = normalize_domain(text)
    if name is None:
        raise ValueError(f"'{text.strip()}' is not a domain name")
    return name


__all__ = ["MAX_NAME_LENGTH", "domain_name", "normalize_domain"]
