"""User accounts in ``users.users``: creating, finding, listing and changing them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.identity import ADMIN
from services.users.errors import UsersError

LEARNER = "learner"
ROLES = (LEARNER, ADMIN)


class EmailTaken(UsersError):
    """Another account already has this email, in any letter case."""

    def __init__(self, email: str) -> None:
        super().__init__(f"the email {email!r} is already registered")
        self.email = email


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    position_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(
            id=row["id"],
            email=row["email"],
            full_name=row["full_name"],
            roles=list(row["roles"]),
            position_id=row["position_id"],
            created_at=row["created_at"],
        )


async def create(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    email: str,
    password_hash: str,
    full_name: str,
    roles: Sequence[str] = (LEARNER,),
) -> User:
    try:
        row = await db.fetchrow(
            """
            INSERT INTO users.users (id, email, password_hash, full_name, roles)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING id, email, full_name, roles, position_id, created_at
            """,
            uuid.uuid4(),
            email,
            password_hash,
            full_name,
            list(roles),
        )
    except asyncpg.UniqueViolationError as exc:
        raise EmailTaken(email) from exc
    return User.from_row(row)


async def by_id(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID
) -> User | None:
    row = await db.fetchrow(
        """
        SELECT id, email, full_name, roles, position_id, created_at
        FROM users.users WHERE id = $1
        """,
        user_id,
    )
    return None if row is None else User.from_row(row)


async def by_ids(
    db: asyncpg.Pool | asyncpg.Connection, user_ids: Sequence[uuid.UUID]
) -> list[User]:
    rows = await db.fetch(
        """
        SELECT id, email, full_name, roles, position_id, created_at
        FROM users.users WHERE id = ANY($1::uuid[]) ORDER BY created_at, id
        """,
        list(user_ids),
    )
    return [User.from_row(row) for row in rows]


async def with_password_hash(
    db: asyncpg.Pool | asyncpg.Connection, email: str
) -> tuple[User, str] | None:
    """The account with ``email`` (any letter case) and its password hash."""
    row = await db.fetchrow(
        """
        SELECT id, email, full_name, roles, position_id, created_at, password_hash
        FROM users.users WHERE lower(email) = lower($1)
        """,
        email,
    )
    return None if row is None else (User.from_row(row), row["password_hash"])


async def set_password_hash(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, password_hash: str
) -> None:
    await db.execute(
        "UPDATE users.users SET password_hash = $2 WHERE id = $1",
        user_id,
        password_hash,
    )


async def page(db: asyncpg.Pool, *, limit: int, offset: int) -> tuple[list[User], int]:
    """Accounts oldest first, ``limit`` from ``offset``, and how many there are."""
    async with (
        db.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await connection.fetch(
            """
            SELECT id, email, full_name, roles, position_id, created_at FROM users.users
            ORDER BY created_at, id LIMIT $1 OFFSET $2
            """,
            limit,
            offset,
        )
        total = await connection.fetchval("SELECT count(*) FROM users.users")
    return [User.from_row(row) for row in rows], int(total)


async def update(
    db: asyncpg.Pool | asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    roles: Sequence[str] | None = None,
    position_id: uuid.UUID | None = None,
    set_position: bool = False,
) -> User | None:
    """Change ``roles`` (unless None) and ``position_id`` (when ``set_position``).

    None when there is no such account.
    """
    row = await db.fetchrow(
        """
        UPDATE users.users SET
            roles = coalesce($2, roles),
            position_id = CASE WHEN $3 THEN $4 ELSE position_id END
        WHERE id = $1
        RETURNING id, email, full_name, roles, position_id, created_at
        """,
        user_id,
        None if roles is None else list(roles),
        set_position,
        position_id,
    )
    return None if row is None else User.from_row(row)


async def ensure_admin(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    email: str,
    password_hash: str,
    full_name: str,
) -> tuple[User, bool]:
    """Create the admin account, or reset its password and roles; True if created."""
    row = await db.fetchrow(
        """
        INSERT INTO users.users AS u (id, email, password_hash, full_name, roles)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT ((lower(email))) DO UPDATE
            SET password_hash = excluded.password_hash, roles = excluded.roles
        RETURNING
            id, email, full_name, roles, position_id, created_at,
            (xmax = 0) AS created
        """,
        uuid.uuid4(),
        email,
        password_hash,
        full_name,
        [LEARNER, ADMIN],
    )
    return User.from_row(row), bool(row["created"])
