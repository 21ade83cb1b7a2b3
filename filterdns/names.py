"""Domain names as people and lists write them, turned into the one form filterdns compares.

Block lists, config.yaml, the console's forms and the engine's explanations all meet the
same names in many spellings (``WWW.Example.com.``, ``münchen.de``, Squid's
``.example.com``); they all go through ``normalize_domain`` so that a name typed in the
console matches the same name in a list. It lives at the top of the package, below every
layer, because config, policy and the server all need it and it needs nothing of theirs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

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
    ``text`` is not a domain name, saying why where the reason is plain to see."""
    name = normalize_domain(text)
    if name is None:
        raise ValueError(f"'{text.strip()}' is not a domain name{_why_not(text.strip())}")
    return name


def _why_not(text: str) -> str:
    """The reason ``text`` is refused, as the end of a sentence, for the mistakes people make
    when typing or pasting (the rest are simply "not a domain name")."""
    if not text:
        return ": nothing was typed"
    try:
        ipaddress.ip_address(text.strip("[]"))
        return ": it is an IP address"
    except ValueError:
        pass
    if any(c.isspace() for c in text):
        return ": it has a space in it (a domain name looks like example.com)"
    if re.search(r"[^\w.-]", text):
        return ": it may only have letters, digits, hyphens and dots (like example.com)"
    if len(text) > MAX_NAME_LENGTH:
        return f": it is longer than {MAX_NAME_LENGTH} characters"
    return ""


@dataclass(frozen=True, slots=True)
class TypedDomain:
    """A domain name a person typed or pasted into a form: ``name`` in normal form, and the
    web address it was taken from when they pasted one (``address``, else "")."""

    name: str
    address: str = ""

    @property
    def note(self) -> str:
        """What to tell the person when the name was not what they typed, else ""."""
        return f"Took {display_domain(self.name)} from the address you pasted." if self.address else ""


def typed_domain(text: str) -> TypedDomain:
    """The domain name in what a person typed into a form, in normal form. A pasted web
    address (``https://www.tiktok.com/@someone``) gives its host name: people copy the
    address bar, and a list entry with a path in it would match nothing. ValueError with a
    plain sentence when there is no domain name in ``text``."""
    text = text.strip()
    if "://" in text or ("/" in text and not any(c.isspace() for c in text)):
        try:
            host = urlsplit(text if "://" in text else f"//{text}").hostname or ""
        except ValueError:
            host = ""
        if not host:
            raise ValueError(f"'{text}' is a web address without a site name in it")
        return TypedDomain(domain_name(host), address=text)
    return TypedDomain(domain_name(text))


def is_at_or_below(name: str, parent: str) -> bool:
    """``name`` is ``parent`` or a name under it (``www.example.org`` under ``example.org``,
    not ``badexample.org``): what an allow or deny entry for ``parent`` covers."""
    return name == parent or name.endswith("." + parent)


def display_domain(name: str) -> str:
    """``name`` as people read it: internationalised labels in Unicode (``bücher.de``, not
    ``xn--bcher-kva.de``). For showing only; names are stored and compared in normal form."""
    if "xn--" not in name:
        return name
    try:
        return name.encode("ascii").decode("idna")
    except UnicodeError:
        return name


__all__ = [
    "MAX_NAME_LENGTH", "TypedDomain", "display_domain", "domain_name", "is_at_or_below", "normalize_domain",
    "typed_domain",
]
