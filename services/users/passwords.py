"""Password hashing with argon2id, off the event loop and a few at a time.

One argon2 hash takes tens of megabytes and a few hundred milliseconds of
CPU, so hashing runs in worker threads behind a small limiter: a burst of
logins queues instead of exhausting memory.
"""

from __future__ import annotations

import os
import secrets

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hashes and checks passwords; create it inside the running event loop."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
        # Checked against when an email is unknown, so that answering
        # "unknown email" costs as long as answering "wrong password".
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(
            self.hasher.hash, password, limiter=self._limiter
        )

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash, spend the time and say no."""
        target = self._dummy_hash if password_hash is None else password_hash
        matches = await anyio.to_thread.run_sync(
            self._matches, target, password, limiter=self._limiter
        )
        return matches and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
