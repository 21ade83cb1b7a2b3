"""Hashing what logs people in: passwords with argon2id, random tokens (sessions, API
tokens, one-time password links) with SHA-256, so a copy of the database logs nobody in.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile) in a worker
thread: the console shares its event loop with DNS, and one hash takes a CPU-tenth of a
second.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

NO_PASSWORD = "!"  # the hash of an account whose password is not set yet: no password matches it


def token_hash(token: str) -> str:
    """What the store keeps of a session token, an API token or a password link's token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Passwords:
    """argon2id hashing off the event loop, at most ``concurrency`` at a time so a flood of
    logins cannot take every core from DNS."""

    def __init__(self, hasher: PasswordHasher | None = None, concurrency: int = 2):
        self.hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no stored hash (unknown user) the
        same work is done against a dummy, and the answer is no."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            await self.verify(self._dummy, password)
            return False
        async with self._slots:
            try:
                return await asyncio.to_thread(self.hasher.verify, stored, password)
            except (VerificationError, InvalidHashError):
                return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)
