"""Refresh-token families: one per login, rotated on every use.

Each refresh hands out a new token of the same family and marks the old one
used, in one transaction whose first statement only succeeds for a token
that is still unused: of two requests with the same token, one wins and the
other finds it used. A used token presented again means it leaked, so the
whole family (the session it belongs to) is revoked.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.common.request_log import request_context
from services.users.errors import UsersError
from services.users.tokens import hash_refresh_token, new_refresh_token

logger = logging.getLogger(__name__)


class RefreshRejected(UsersError):
    """The refresh token cannot be used; ``reason`` says why, for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RefreshToken:
    token: str
    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime


async def start(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, ttl_s: int
) -> RefreshToken:
    """The first refresh token of a new family, for a login."""
    return await _insert(db, user_id, uuid.uuid4(), None, ttl_s)


async def rotate(
    pool: asyncpg.Pool, token: str, ttl_s: int
) -> tuple[RefreshToken, list[str]]:
    """Use ``token`` once: mark it used, hand out its successor and the owner's roles.

    Raises RefreshRejected for an unknown, expired or revoked token, and for
    a used one, after revoking its family.
    """
    token_hash = hash_refresh_token(token)
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            UPDATE users.refresh_tokens AS t SET used_at = now()
            FROM users.users AS u
            WHERE t.token_hash = $1 AND u.id = t.user_id
                AND t.used_at IS NULL AND t.revoked_at IS NULL
                AND t.expires_at > now()
            RETURNING t.id, t.family_id, t.user_id, u.roles
            """,
            token_hash,
        )
        if row is not None:
            successor = await _insert(
                connection, row["user_id"], row["family_id"], row["id"], ttl_s
            )
            return successor, list(row["roles"])
    # Not usable: find out why, outside the failed attempt's transaction so
    # that a concurrent winner's successor is visible and gets revoked too.
    found = await pool.fetchrow(
        """
        SELECT family_id, user_id, used_at, revoked_at, expires_at <= now() AS expired
        FROM users.refresh_tokens WHERE token_hash = $1
        """,
        token_hash,
    )
    if found is None:
        raise RefreshRejected("the refresh token is unknown")
    if found["revoked_at"] is not None:
        raise RefreshRejected("the refresh token has been revoked")
    if found["used_at"] is not None:
        revoked = await revoke_family(pool, found["family_id"])
        logger.warning(
            "a used refresh token was presented again; revoked its family %s "
            "(%d tokens) of user %s",
            found["family_id"],
            revoked,
            found["user_id"],
            extra=request_context(),
        )
        raise RefreshRejected(
            "the refresh token was already used; every token of its session is "
            "now revoked, log in again"
        )
    raise RefreshRejected("the refresh token has expired")


async def owner_and_family(
    db: asyncpg.Pool | asyncpg.Connection, token: str
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The user and family of ``token``, or None for an unknown token."""
    row = await db.fetchrow(
        "SELECT user_id, family_id FROM users.refresh_tokens WHERE token_hash = $1",
        hash_refresh_token(token),
    )
    return None if row is None else (row["user_id"], row["family_id"])


async def revoke_family(
    db: asyncpg.Pool | asyncpg.Connection, family_id: uuid.UUID
) -> int:
    """Revoke every token of a family not revoked yet; how many that was."""
    status = await db.execute(
        """
        UPDATE users.refresh_tokens SET revoked_at = now()
        WHERE family_id = $1 AND revoked_at IS NULL
        """,
        family_id,
    )
    return int(status.rpartition(" ")[2])


async def _insert(
    db: asyncpg.Pool | asyncpg.Connection,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    ttl_s: int,
) -> RefreshToken:
    token = new_refresh_token()
    row = await db.fetchrow(
        """
        INSERT INTO users.refresh_tokens
            (id, family_id, user_id, token_hash, parent_id, expires_at)
        VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
        RETURNING id, expires_at
        """,
        uuid.uuid4(),
        family_id,
        user_id,
        hash_refresh_token(token),
        parent_id,
        timedelta(seconds=ttl_s),
    )
    return RefreshToken(token, row["id"], family_id, user_id, row["expires_at"])
