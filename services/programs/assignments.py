"""Who is assigned to which program, in ``programs.assignments``.

Every new assignment publishes ``program.assigned`` in the transaction that
stores it; the learning service enrolls the user in each course it lists.
Assigning someone already assigned publishes nothing again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.common import events
from services.programs import SCHEMA, catalog
from services.programs.catalog import Program

logger = logging.getLogger(__name__)

PROGRAM_ASSIGNED = "program.assigned"


@dataclass(frozen=True)
class Outcome:
    program: Program
    assigned: list[uuid.UUID]
    already_assigned: list[uuid.UUID]


async def assign(
    pool: asyncpg.Pool,
    program_id: uuid.UUID,
    user_ids: Sequence[uuid.UUID],
    due_at: datetime | None,
) -> Outcome | None:
    """Assign users to a program; None when there is no such program.

    With ``due_at``, users assigned already get that due date too.
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await catalog.lock(conn, program_id, share=True):
            return None
        program = await catalog.by_id(conn, program_id)
        assert program is not None  # locked above
        return await assign_locked(conn, program, user_ids, due_at)


async def assign_locked(
    conn: asyncpg.Connection,
    program: Program,
    user_ids: Sequence[uuid.UUID],
    due_at: datetime | None,
) -> Outcome:
    """``assign`` inside the caller's transaction, the program's row share-locked."""
    rows = await conn.fetch(
        """
        INSERT INTO programs.assignments (program_id, user_id, due_at)
        SELECT $1, user_id, $3 FROM unnest($2::uuid[]) AS u(user_id)
        ON CONFLICT (program_id, user_id) DO NOTHING
        RETURNING user_id
        """,
        program.id,
        list(user_ids),
        due_at,
    )
    inserted = {row["user_id"] for row in rows}
    assigned = [user_id for user_id in user_ids if user_id in inserted]
    already = [user_id for user_id in user_ids if user_id not in inserted]
    if already and due_at is not None:
        await conn.execute(
            "UPDATE programs.assignments SET due_at = $3 "
            "WHERE program_id = $1 AND user_id = ANY($2::uuid[])",
            program.id,
            already,
            due_at,
        )
    for user_id in assigned:
        await publish_assigned(conn, program, user_id, due_at)
    return Outcome(program, assigned, already)


async def republish(conn: asyncpg.Connection, program: Program) -> int:
    """Publish ``program.assigned`` again for everyone assigned, with the program's
    current courses (after one was added); returns how many were published."""
    rows = await conn.fetch(
        "SELECT user_id, due_at FROM programs.assignments WHERE program_id = $1 "
        "ORDER BY assigned_at, user_id",
        program.id,
    )
    for row in rows:
        await publish_assigned(conn, program, row["user_id"], row["due_at"])
    return len(rows)


async def publish_assigned(
    conn: asyncpg.Connection,
    program: Program,
    user_id: uuid.UUID,
    due_at: datetime | None,
) -> None:
    await events.record(
        conn,
        SCHEMA,
        PROGRAM_ASSIGNED,
        {
            "program_id": str(program.id),
            "program_title": program.title,
            "user_id": str(user_id),
            "course_ids": [str(course_id) for course_id in program.course_ids],
            "due_at": None if due_at is None else due_at.astimezone(UTC).isoformat(),
        },
    )
