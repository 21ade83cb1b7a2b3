"""Signed links: addresses that carry their own proof, so they work without a login.

Two kinds, each keyed with a store secret of its own (made once, shared by every node):

* a shared report link ``/r/<group>/<expiry>/<signature>`` shows one group's reports
  until it expires; rotating its secret revokes every such link at once;
* an unsubscribe link ``/family/unsubscribe/<token>`` (in every digest mail) turns a
  parent's digest off; the token is an opaque keyed hash of the account, never the
  address itself; its own secret means rotating the report links' key does not break the
  links in mails already sent.

The console checks them (``web``) and the digest writes them (``reports``), so they live
below both. ``signature`` and ``same_secret`` are the HMAC and the constant-time
comparison every signed value of the console uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from urllib.parse import quote

from filterdns.store import Store

LINK_SECRET = "report-links"  # the store secret that signs shared report links
# The longest a shared report link lasts. Checked when a link is opened, not only when it
# is made: a link running further into the future was not made by this console (forged
# with a leaked key, or made before this cap), and one leaked key must not open reports
# for years.
SHARED_LINK_MAX_DAYS = 30
UNSUBSCRIBE_SECRET = "digest-unsubscribe"  # the store secret (and purpose) of unsubscribe links
TOKEN_LENGTH = 43  # an unpadded URL-safe base64 SHA-256 HMAC


def same_secret(supplied: object, expected: str) -> bool:
    """Constant-time comparison that tolerates junk input."""
    if not expected or not isinstance(supplied, str):
        return False
    return hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), expected.encode())


def signature(secret: str, *parts: str) -> str:
    """HMAC-SHA256 of ``parts`` (NUL-separated, the first naming what is signed, so a
    signature for one purpose is never valid for another), URL-safe base64 unpadded."""
    digest = hmac.new(secret.encode(), "\0".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _store_secret(store: Store, name: str) -> str:
    return await store.get_secret(name, secrets.token_urlsafe(32))


# --- shared report links ------------------------------------------------------------------------


async def link_secret(store: Store) -> str:
    return await _store_secret(store, LINK_SECRET)


async def new_shared_link(store: Store, group: str, days: int, *, actor: str) -> str:
    """The path of a new shared link to ``group``'s reports, valid ``days`` from now (audited)."""
    if not 1 <= days <= SHARED_LINK_MAX_DAYS:
        raise ValueError(f"a shared link lasts 1 to {SHARED_LINK_MAX_DAYS} days")
    expiry = int(time.time()) + days * 86_400
    path = link_path(group, expiry, link_signature(await link_secret(store), group, expiry))
    await store.audit(actor, "report.share", group, {"days": days, "expires": expiry})
    return path


async def revoke_report_links(store: Store, *, actor: str) -> None:
    """Revoke every shared report link at once: a new key signs the links made from now on."""
    await store.set_secret(LINK_SECRET, secrets.token_urlsafe(32))
    await store.audit(actor, "report.rotate", LINK_SECRET)


def within_link_lifetime(expiry: int, now: float) -> bool:
    """Whether a link expiring at ``expiry`` could have been made by this console by ``now``."""
    return expiry <= now + SHARED_LINK_MAX_DAYS * 86_400


def link_signature(secret: str, group: str, expiry: int) -> str:
    """What a shared link to ``group`` valid until ``expiry`` carries as its proof."""
    return signature(secret, "report-link", group, str(expiry))


def link_path(group: str, expiry: int, proof: str) -> str:
    return f"/r/{quote(group, safe='')}/{expiry}/{proof}"


# --- unsubscribe links ----------------------------------------------------------------------------


async def unsubscribe_secret(store: Store) -> str:
    return await _store_secret(store, UNSUBSCRIBE_SECRET)


def unsubscribe_token(secret: str, account: str) -> str:
    """The opaque id of ``account`` in its unsubscribe links: a keyed hash, so a link
    forwarded, logged by a mail gateway or shown in a mail program's preview names nobody,
    and the same every week, so last week's link still works."""
    return signature(secret, UNSUBSCRIBE_SECRET, account)


def token_account(secret: str, token: str, accounts: Iterable[str]) -> str | None:
    """The one of ``accounts`` (the parent accounts) an unsubscribe token was made for, or
    ``None`` if it is not genuine. One HMAC per account, a few milliseconds for thousands
    of parents: an opaque id needs no table of its own."""
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
        return None
    return next((account for account in accounts if same_secret(token, unsubscribe_token(secret, account))), None)


def unsubscribe_path(token: str) -> str:
    return f"/family/unsubscribe/{token}"
