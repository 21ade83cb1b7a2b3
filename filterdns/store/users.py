"""Store operations for who may use the console and how they prove it: users, login
sessions, API tokens and one-time password links.

The store never sees a password or a token, only their hashes (made by ``web.auth``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from filterdns.store.base import Row, StoreBase, StoreError, Where, check_choice, current_time

Role = Literal["admin", "teacher", "viewer", "parent"]

_USER_COLUMNS = "name, role, password_hash, groups, disabled, failed_logins, locked_until, created"
_SESSION_COLUMNS = 'token_hash, user_name AS "user", csrf_token, created, expires'
_TOKEN_COLUMNS = 'id, token_hash, user_name AS "user", name, created, last_used'


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str  # an argon2 hash string made by the caller; the store never sees passwords
    groups: tuple[str, ...]  # groups a teacher or parent may see; admins see all
    disabled: bool
    failed_logins: int
    locked_until: float | None
    created: float

    def is_locked(self, now: float) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user: str
    csrf_token: str
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    token_hash: str
    user: str
    name: str
    created: float
    last_used: float | None


def _user(row: Row) -> User:
    row["groups"] = tuple(json.loads(row["groups"]))
    row["disabled"] = bool(row["disabled"])
    return User(**row)


class UserQueries(StoreBase):
    """The ``users``, ``sessions``, ``api_tokens`` and ``password_tokens`` tables."""

    # --- users ------------------------------------------------------------------------

    async def create_user(
        self, name: str, role: Role, password_hash: str, *,
        groups: Sequence[str] = (), now: float | None = None,
    ) -> User:
        """Add a user; ``Conflict`` if the name is taken."""
        check_choice(role, Role, "role")
        rows = await self._query(
            "INSERT INTO users (name, role, password_hash, groups, disabled, failed_logins, created) "
            f"VALUES (?, ?, ?, ?, FALSE, 0, ?) RETURNING {_USER_COLUMNS}",
            [name, role, password_hash, json.dumps(list(groups)), current_time(now)],
        )
        return _user(rows[0])

    async def get_user(self, name: str) -> User | None:
        rows = await self._query(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", [name])
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self._query(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")]

    async def update_user(
        self, name: str, *,
        role: Role | None = None,
        password_hash: str | None = None,
        groups: Sequence[str] | None = None,
        disabled: bool | None = None,
    ) -> User | None:
        """Change the given fields (``None``: unchanged); ``None`` if there is no such user."""
        changes: dict[str, Any] = {}
        if role is not None:
            check_choice(role, Role, "role")
            changes["role"] = role
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if groups is not None:
            changes["groups"] = json.dumps(list(groups))
        if disabled is not None:
            changes["disabled"] = disabled
        if not changes:
            return await self.get_user(name)
        assignments = ", ".join(f"{column} = ?" for column in changes)
        rows = await self._query(
            f"UPDATE users SET {assignments} WHERE name = ? RETURNING {_USER_COLUMNS}",
            [*changes.values(), name],
        )
        return _user(rows[0]) if rows else None

    async def delete_user(self, name: str) -> bool:
        """Remove a user with their sessions and API tokens."""
        return await self._execute("DELETE FROM users WHERE name = ?", [name]) > 0

    async def reserve_login_attempt(
        self, name: str, *, now: float | None = None, lock_after: int = 5, lock_seconds: float = 900
    ) -> User | None:
        """Count a login attempt as failed before its password is checked (a good password
        settles it with ``note_login_success``), so that parallel attempts on any node see
        each other; the ``lock_after``-th in a row locks the account for ``lock_seconds``
        and starts the count again. ``None``: no such user, or the account is locked and
        the attempt may not be made."""
        at = current_time(now)
        rows = await self._query(
            "UPDATE users SET "
            "locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END, "
            "failed_logins = CASE WHEN failed_logins + 1 >= ? THEN 0 ELSE failed_logins + 1 END "
            f"WHERE name = ? AND (locked_until IS NULL OR locked_until <= ?) RETURNING {_USER_COLUMNS}",
            [lock_after, at + lock_seconds, lock_after, name, at],
        )
        return _user(rows[0]) if rows else None

    async def note_login_success(self, name: str) -> None:
        await self._execute(
            "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?", [name]
        )

    # --- sessions and API tokens ------------------------------------------------------

    async def create_session(
        self, token_hash: str, user: str, csrf_token: str, expires: float, *, now: float | None = None
    ) -> Session:
        rows = await self._query(
            "INSERT INTO sessions (token_hash, user_name, csrf_token, created, expires) "
            f"VALUES (?, ?, ?, ?, ?) RETURNING {_SESSION_COLUMNS}",
            [token_hash, user, csrf_token, current_time(now), expires],
        )
        return Session(**rows[0])

    async def get_session(self, token_hash: str, *, now: float | None = None) -> Session | None:
        """The session with this token hash, unless it has expired."""
        rows = await self._query(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE token_hash = ? AND expires > ?",
            [token_hash, current_time(now)],
        )
        return Session(**rows[0]) if rows else None

    async def delete_session(self, token_hash: str) -> bool:
        return await self._execute("DELETE FROM sessions WHERE token_hash = ?", [token_hash]) > 0

    async def delete_user_sessions(self, user: str) -> int:
        """Log a user out everywhere (after a password change or when disabling them)."""
        return await self._execute("DELETE FROM sessions WHERE user_name = ?", [user])

    async def create_api_token(
        self, token_hash: str, user: str, name: str, *, now: float | None = None
    ) -> ApiToken:
        rows = await self._query(
            "INSERT INTO api_tokens (token_hash, user_name, name, created) "
            f"VALUES (?, ?, ?, ?) RETURNING {_TOKEN_COLUMNS}",
            [token_hash, user, name, current_time(now)],
        )
        return ApiToken(**rows[0])

    async def use_api_token(self, token_hash: str, *, now: float | None = None) -> ApiToken | None:
        """Look a token up by its hash and note that it was used, in one round trip. The
        note is not worth refusing the call for: a store that can be read but not written
        (disk full, read-only) still finds the token, ``last_used`` then left as it was."""
        try:
            rows = await self._query(
                f"UPDATE api_tokens SET last_used = ? WHERE token_hash = ? RETURNING {_TOKEN_COLUMNS}",
                [current_time(now), token_hash],
            )
        except StoreError:
            rows = await self._query(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?", [token_hash])
        return ApiToken(**rows[0]) if rows else None

    async def list_api_tokens(self, user: str | None = None) -> list[ApiToken]:
        w = Where()
        w.equal("user_name", user)
        rows = await self._query(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens{w.sql()} ORDER BY id", w.params)
        return [ApiToken(**r) for r in rows]

    async def delete_api_token(self, token_id: int) -> bool:
        return await self._execute("DELETE FROM api_tokens WHERE id = ?", [token_id]) > 0

    async def delete_user_api_tokens(self, user: str) -> int:
        """Revoke every API token of a user (after a password reset); returns how many."""
        return await self._execute("DELETE FROM api_tokens WHERE user_name = ?", [user])

    async def delete_expired_sessions(self, *, now: float | None = None) -> int:
        """Retention: delete sessions that expired by ``now``; returns how many."""
        return await self._execute("DELETE FROM sessions WHERE expires <= ?", [current_time(now)])

    # --- one-time password links ------------------------------------------------------

    async def put_password_token(
        self, user: str, token_hash: str, expires: float, *, now: float | None = None
    ) -> None:
        """Issue ``user``'s one-time password link (its token's hash), replacing any link
        issued before, which stops working."""
        await self._execute(
            "INSERT INTO password_tokens (user_name, token_hash, created, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (user_name) DO UPDATE SET token_hash = excluded.token_hash, "
            "created = excluded.created, expires = excluded.expires",
            [user, token_hash, current_time(now), expires],
        )

    async def password_token_user(self, token_hash: str, *, now: float | None = None) -> str | None:
        """Whose live password link this is, without using it up (showing the form)."""
        rows = await self._query(
            'SELECT user_name AS "user" FROM password_tokens WHERE token_hash = ? AND expires > ?',
            [token_hash, current_time(now)],
        )
        return rows[0]["user"] if rows else None

    async def use_password_token(self, token_hash: str, *, now: float | None = None) -> str | None:
        """Use a password link up: whose it was, or ``None`` if it is unknown, used or
        expired. Atomic, so a link works once even when submitted twice at once."""
        rows = await self._query(
            'DELETE FROM password_tokens WHERE token_hash = ? AND expires > ? RETURNING user_name AS "user"',
            [token_hash, current_time(now)],
        )
        return rows[0]["user"] if rows else None
