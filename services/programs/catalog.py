"""Programs and their courses in ``programs.programs`` and ``programs.program_courses``.

A program's courses keep the order they were added in. At most one program
is the onboarding program (a partial unique index holds the line).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from services.programs.errors import ProgramsError

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
ONE_ONBOARDING = "programs_one_onboarding"

_SELECT = """
    SELECT p.id, p.title, p.onboarding, p.created_at,
           ARRAY(SELECT c.course_id FROM programs.program_courses c
                 WHERE c.program_id = p.id ORDER BY c.position) AS course_ids
    FROM programs.programs p
"""


@dataclass(frozen=True)
class Program:
    id: uuid.UUID
    title: str
    course_ids: list[uuid.UUID]
    onboarding: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Program:
        return cls(
            id=row["id"],
            title=row["title"],
            course_ids=list(row["course_ids"]),
            onboarding=row["onboarding"],
            created_at=row["created_at"],
        )


class OnboardingTaken(ProgramsError):
    """Another program is the onboarding program already."""

    def __init__(self, existing: Program) -> None:
        super().__init__(
            f"program {existing.id} ({existing.title!r}) is the onboarding program "
            "already; there can be only one"
        )
        self.existing = existing


async def create(
    pool: asyncpg.Pool,
    *,
    title: str,
    course_ids: Sequence[uuid.UUID],
    onboarding: bool,
) -> Program:
    """Store a new program; OnboardingTaken when it is a second onboarding one."""
    program_id = uuid.uuid4()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO programs.programs (id, title, onboarding) "
                "VALUES ($1, $2, $3)",
                program_id,
                title,
                onboarding,
            )
            await conn.execute(
                """
                INSERT INTO programs.program_courses (program_id, course_id, position)
                SELECT $1, course_id, position
                FROM unnest($2::uuid[]) WITH ORDINALITY AS c(course_id, position)
                """,
                program_id,
                list(course_ids),
            )
            program = await by_id(conn, program_id)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != ONE_ONBOARDING:
            raise
        existing = await onboarding_program(pool)
        if existing is None:  # gone since; there is none to name
            raise
        raise OnboardingTaken(existing) from exc
    assert program is not None  # inserted in the same transaction
    return program


async def by_id(db: Db, program_id: uuid.UUID) -> Program | None:
    row = await db.fetchrow(_SELECT + "WHERE p.id = $1", program_id)
    return None if row is None else Program.from_row(row)


async def onboarding_program(db: Db) -> Program | None:
    row = await db.fetchrow(_SELECT + "WHERE p.onboarding")
    return None if row is None else Program.from_row(row)


async def page(
    pool: asyncpg.Pool, *, onboarding: bool | None, limit: int, offset: int
) -> tuple[list[Program], int]:
    """Programs oldest first, optionally only (not) onboarding ones, and how many."""
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await conn.fetch(
            _SELECT + "WHERE $1::boolean IS NULL OR p.onboarding = $1 "
            "ORDER BY p.created_at, p.id LIMIT $2 OFFSET $3",
            onboarding,
            limit,
            offset,
        )
        total = await conn.fetchval(
            "SELECT count(*) FROM programs.programs "
            "WHERE $1::boolean IS NULL OR onboarding = $1",
            onboarding,
        )
    return [Program.from_row(row) for row in rows], total


async def lock(conn: asyncpg.Connection, program_id: uuid.UUID, *, share: bool) -> bool:
    """Lock a program's row until the end of the transaction; False when absent.

    Assignments take a share lock and adding a course an exclusive one, so that
    an assignment is published either with the new course or before it.
    """
    mode = "SHARE" if share else "UPDATE"
    found = await conn.fetchval(
        f"SELECT true FROM programs.programs WHERE id = $1 FOR {mode}",  # noqa: S608
        program_id,
    )
    return bool(found)


async def append_course(
    conn: asyncpg.Connection, program_id: uuid.UUID, course_id: uuid.UUID
) -> bool:
    """Add a course at the end of a locked program; False when it is in already."""
    added = await conn.fetchval(
        """
        INSERT INTO programs.program_courses (program_id, course_id, position)
        SELECT $1, $2, coalesce(max(position), 0) + 1
        FROM programs.program_courses WHERE program_id = $1
        ON CONFLICT (program_id, course_id) DO NOTHING
        RETURNING true
        """,
        program_id,
        course_id,
    )
    return bool(added)
