"""Every change to an account, in one place: the console's pages and ``filterdns user``
call these, and each writes the store and its audit entry together, so no way of changing
an account forgets the audit log or a step (a new password also lifts a lockout, ends the
account's sessions and revokes its API tokens, wherever it was set).

Reading accounts (``store.get_user``, ``store.list_users``...) needs no service. Checking
what people typed (``rules``) and hashing passwords (``passwords``) happen before these
are called: a method here gets a hash, never a password.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from filterdns.accounts.passwords import NO_PASSWORD, token_hash
from filterdns.i18n import N_, Translator
from filterdns.store import ApiToken, Conflict, Session, Store, User
from filterdns.store.users import Role

PASSWORD_LINK_DAYS = 14
RESET_LINK_MINUTES = 60  # a link a parent asked for by mail: short-lived, as mail may be read by others
RESET_SUBJECT = N_("Choose a new password")
RESET_MAIL = N_(
    "Someone asked to choose a new password for %(account)s on the school's online safety pages. If it was you, "
    "open this link within %(minutes)s minutes; it works once:"
)
RESET_IGNORE = N_("If it was not you, ignore this email: your password stays as it is.")


@dataclass(frozen=True, slots=True)
class ParentImport:
    """What an import did: the accounts it created, each with the token of its first
    password link, and how many it updated."""

    created: list[tuple[str, str]]
    updated: int


class Accounts:
    """Changes to console accounts (staff and parents), each audited as done by ``actor``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- any account ------------------------------------------------------------------------

    async def add(
        self, name: str, role: Role, password_hash: str, *, actor: str, groups: Sequence[str] = (), **detail: object
    ) -> User:
        """Create an account; ``Conflict`` if the name is taken. ``detail`` adds to the audit entry."""
        user = await self.store.create_user(name, role, password_hash, groups=groups)
        await self.store.audit(actor, "user.add", name, {"role": role, "groups": list(groups), **detail})
        return user

    async def update(self, name: str, *, role: Role, groups: Sequence[str], actor: str) -> None:
        await self.store.update_user(name, role=role, groups=groups)
        await self.store.audit(actor, "user.update", name, {"role": role, "groups": list(groups)})

    async def set_password(
        self, name: str, password_hash: str, *, actor: str, action: str = "user.password", **detail: object
    ) -> None:
        """A new password: it also lifts a lockout, logs the account out everywhere and
        revokes its API tokens. A password is reset because it was forgotten or may be
        known to someone else, who could have made a token with it; a token the owner
        still needs is quickly made again, a forgotten one would outlive the reset."""
        await self.store.update_user(name, password_hash=password_hash)
        await self.store.note_login_success(name)
        await self.store.delete_user_sessions(name)
        revoked = await self.store.delete_user_api_tokens(name)
        await self.store.audit(actor, action, name, {**detail, "tokens_revoked": revoked})

    async def unlock(self, name: str, *, actor: str) -> None:
        """Lift a lockout now (the only admin locked out by someone guessing need not wait)."""
        await self.store.note_login_success(name)
        await self.store.audit(actor, "user.unlock", name)

    async def set_disabled(self, name: str, disabled: bool, *, actor: str) -> None:
        """Disable (ending the account's sessions) or enable an account."""
        if disabled:
            await self.store.delete_user_sessions(name)
        await self.store.update_user(name, disabled=disabled)
        await self.store.audit(actor, "user.disable" if disabled else "user.enable", name)

    async def add_api_token(self, owner: str, name: str, secret: str, *, actor: str) -> ApiToken:
        """Keep (the hash of) a new API token ``secret`` for ``owner``. ValueError for an
        unknown owner or a missing name."""
        name = name.strip()
        if not name:
            raise ValueError("give the token a name, e.g. what will use it")
        if await self.store.get_user(owner) is None:
            raise ValueError(f"no user called {owner}")
        token = await self.store.create_api_token(token_hash(secret), owner, name[:100])
        await self.store.audit(actor, "token.add", owner, {"id": token.id, "name": token.name})
        return token

    async def delete_api_token(self, token_id: int, *, actor: str) -> bool:
        deleted = await self.store.delete_api_token(token_id)
        if deleted:
            await self.store.audit(actor, "token.delete", str(token_id))
        return deleted

    # --- logging in ---------------------------------------------------------------------------

    async def reserve_login_attempt(self, name: str, *, now: float, lock_after: int, lock_seconds: float) -> User | None:
        """Count an attempt on ``name`` as failed before its password is checked, so that
        parallel attempts see each other; ``logged_in`` takes it back. ``None``: the account
        is locked (or gone) and the attempt may not be made."""
        return await self.store.reserve_login_attempt(name, now=now, lock_after=lock_after, lock_seconds=lock_seconds)

    async def logged_in(self, name: str, *, new_hash: str | None = None) -> None:
        """A right password: the failures counted are cleared, and ``new_hash`` (the same
        password hashed with today's parameters) replaces an outdated one."""
        await self.store.note_login_success(name)
        if new_hash is not None:
            await self.store.update_user(name, password_hash=new_hash)

    async def open_session(self, name: str, token: str, *, csrf_token: str, expires: float, now: float) -> Session:
        """Keep a new session of ``name`` under (the hash of) its cookie value ``token``."""
        return await self.store.create_session(token_hash(token), name, csrf_token, expires, now=now)

    async def close_session(self, token: str) -> None:
        await self.store.delete_session(token_hash(token))

    async def use_api_token(self, secret: str) -> ApiToken | None:
        """The API token a bearer ``secret`` is, noting its use; ``None`` if unknown."""
        return await self.store.use_api_token(token_hash(secret))

    # --- parents ------------------------------------------------------------------------------

    async def add_parent(
        self, email: str, children: Sequence[tuple[str, str]], *, language: str, actor: str
    ) -> tuple[User, bool]:
        """Create the parent account ``email`` or add ``children`` to it (see ``save_parent``)."""
        user, created = await self.save_parent(email, children, merge=True, language=language)
        await self.store.audit(actor, "parent.add" if created else "parent.update", email, {"groups": list(user.groups)})
        return user, created

    async def import_parents(
        self, children: Mapping[str, Sequence[tuple[str, str]]], *, actor: str, filename: str,
        pupils: Mapping[str, Sequence[str]] | None = None,
    ) -> ParentImport:
        """Apply a checked CSV import (``parent_csv``): each parent's children (and their
        roster pupil ids) replace those they had; each new account gets its first password link."""
        created = []
        for email, pairs in children.items():
            _, new = await self.save_parent(email, pairs, merge=False)
            await self.store.set_parent_pupils(email, (pupils or {}).get(email, ()))
            if new:
                created.append((email, await self.password_link(email)))
        updated = len(children) - len(created)
        await self.store.audit(actor, "parent.import", filename, {"created": len(created), "updated": updated})
        return ParentImport(created, updated)

    async def save_parent(
        self, email: str, children: Sequence[tuple[str, str]], *, merge: bool, language: str | None = None
    ) -> tuple[User, bool]:
        """Create the parent account ``email`` or update it; ``merge`` adds the children to
        those it has, otherwise they replace them. Its groups are its children's groups.
        Returns the account and whether it is new. ValueError if a staff account has the name."""
        store = self.store
        existing = await store.get_user(email)
        if existing is not None and existing.role != "parent":
            raise ValueError(f"'{email}' is the name of a {existing.role} account")
        pairs = list(children)
        if existing is not None and merge:
            profile = await store.get_parent_profile(email)
            pairs = list(dict.fromkeys([*(profile.children if profile else ()), *pairs]))
        groups = list(dict.fromkeys(group for _, group in pairs))
        if existing is not None and merge:
            groups = list(dict.fromkeys([*existing.groups, *groups]))
        if existing is None:
            try:
                user = await store.create_user(email, "parent", NO_PASSWORD, groups=groups)
            except Conflict:
                raise ValueError(f"'{email}' was created by someone else just now; try again") from None
        else:
            user = await store.update_user(email, groups=groups) or existing
        await store.save_parent_profile(email, pairs)
        if language is not None:
            await store.set_parent_language(email, language)
        return user, existing is None

    async def delete_parent(self, name: str, *, actor: str) -> None:
        await self.store.delete_user(name)
        await self.store.audit(actor, "parent.delete", name)

    async def set_language(self, account: str, language: str) -> None:
        """A parent's language ("" for the browser's)."""
        if not await self.store.set_parent_language(account, language):
            # An account made on the Users page has no profile yet.
            await self.store.save_parent_profile(account, [])
            await self.store.set_parent_language(account, language)

    async def set_digest(self, account: str, on: bool, *, action: str, detail: Mapping[str, object]) -> None:
        """Turn a parent's weekly digest on or off, audited as ``action`` by the parent."""
        if not await self.store.set_parent_digest(account, on):
            # An account made on the Users page has no profile yet (its digest is on).
            await self.store.save_parent_profile(account, [])
            await self.store.set_parent_digest(account, on)
        await self.store.audit(account, action, account, dict(detail))

    # --- one-time password links --------------------------------------------------------------

    async def password_link(self, name: str, *, seconds: float = PASSWORD_LINK_DAYS * 86_400) -> str:
        """The token of a new one-time link for ``name`` to set their password (any earlier
        one stops working), valid for ``seconds`` (``PASSWORD_LINK_DAYS`` by default). Only
        its hash is stored, so the store cannot give a working link away."""
        token = secrets.token_urlsafe(32)
        await self.store.put_password_token(name, token_hash(token), time.time() + seconds)
        return token

    async def mail_reset_link(self, name: str, *, client: str, base_url: str, translator: Translator) -> bool:
        """Queue a mail with a one-time link valid for ``RESET_LINK_MINUTES`` for a parent
        who asked for one on the login page, in their language. False (nothing queued)
        unless ``name`` is an enabled parent account; the page says the same either way, so
        nobody learns which addresses have accounts."""
        user = await self.store.get_user(name)
        if user is None or user.disabled or user.role != "parent":
            return False
        token = await self.password_link(name, seconds=RESET_LINK_MINUTES * 60)
        await self.store.audit(name, "parent.reset-link", name, {"client": client})
        text = "\n\n".join((
            translator.gettext(RESET_MAIL) % {"account": name, "minutes": RESET_LINK_MINUTES},
            f"{base_url}/family/welcome/{token}",
            translator.gettext(RESET_IGNORE),
        ))  # fmt: skip
        return await self.store.enqueue_message(
            dedup_key=f"password-reset:{token_hash(token)[:16]}", channel="email", kind="password", recipient=name,
            subject=translator.gettext(RESET_SUBJECT), body_text=text + "\n",
        )  # fmt: skip

    async def renew_password_link(self, name: str, *, actor: str) -> str:
        """A new password link asked for by staff (a parent who lost theirs)."""
        token = await self.password_link(name)
        await self.store.audit(actor, "parent.link", name)
        return token

    async def password_link_user(self, token: str) -> User | None:
        """The enabled account a live password link is for."""
        name = await self.store.password_token_user(token_hash(token))
        user = await self.store.get_user(name) if name else None
        return user if user is not None and not user.disabled else None

    async def use_password_link(self, token: str) -> str | None:
        """Spend a password link: the account it was for, or ``None`` if it was used already."""
        return await self.store.use_password_token(token_hash(token))
