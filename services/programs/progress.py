"""How far each user is in each course, projected from the learning service's
events into ``programs.course_progress``, and summed up per program.

Events may arrive twice or out of order (several replicas consume them side
by side), so every handler is idempotent and order-tolerant: progress only
ever grows, a completion is never undone, and an ``enrollment.created``
arriving late leaves both alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.events import Event
from services.programs.payloads import (
    optional_uuid_field,
    percent_field,
    time_field,
    uuid_field,
)

ENROLLMENT_CREATED = "enrollment.created"
ENROLLMENT_PROGRESSED = "enrollment.progressed"
COURSE_COMPLETED = "course.completed"


@dataclass(frozen=True)
class Summary:
    """A user's standing in one program."""

    courses_total: int
    courses_done: int
    percent: int
    overdue: bool


def summarize(
    courses_total: int, courses_done: int, due_at: datetime | None, now: datetime
) -> Summary:
    """``percent`` is the share of courses done, rounded down, so that 100 means
    all of them (a program without courses counts as done); ``overdue`` means
    the due date has passed with a course still not done."""
    finished = courses_done >= courses_total
    percent = 100 if finished else courses_done * 100 // courses_total
    overdue = due_at is not None and due_at < now and not finished
    return Summary(courses_total, courses_done, percent, overdue)


async def on_enrollment_created(conn: asyncpg.Connection, event: Event) -> None:
    user_id, course_id, enrollment_id = _enrollment(event)
    await conn.execute(
        """
        INSERT INTO programs.course_progress (user_id, course_id, enrollment_id)
        VALUES ($1, $2, $3)
        ON CONFLICT (user_id, course_id) DO UPDATE
        SET enrollment_id = coalesce(course_progress.enrollment_id, $3),
            updated_at = now()
        """,
        user_id,
        course_id,
        enrollment_id,
    )


async def on_enrollment_progressed(conn: asyncpg.Connection, event: Event) -> None:
    user_id, course_id, enrollment_id = _enrollment(event)
    progress = percent_field(event, "progress")
    await conn.execute(
        """
        INSERT INTO programs.course_progress
            (user_id, course_id, enrollment_id, progress)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_id, course_id) DO UPDATE
        SET enrollment_id = coalesce(course_progress.enrollment_id, $3),
            progress = greatest(course_progress.progress, $4),
            updated_at = now()
        """,
        user_id,
        course_id,
        enrollment_id,
        progress,
    )


async def on_course_completed(conn: asyncpg.Connection, event: Event) -> None:
    user_id, course_id, enrollment_id = _enrollment(event)
    completed_at = time_field(
        event, "completed_at", event.payload.get("completed_at") or event.occurred_at
    )
    await conn.execute(
        """
        INSERT INTO programs.course_progress
            (user_id, course_id, enrollment_id, progress, completed_at)
        VALUES ($1, $2, $3, 100, $4)
        ON CONFLICT (user_id, course_id) DO UPDATE
        SET enrollment_id = coalesce(course_progress.enrollment_id, $3),
            progress = 100,
            completed_at = coalesce(course_progress.completed_at, $4),
            updated_at = now()
        """,
        user_id,
        course_id,
        enrollment_id,
        completed_at,
    )


HANDLERS = {
    ENROLLMENT_CREATED: on_enrollment_created,
    ENROLLMENT_PROGRESSED: on_enrollment_progressed,
    COURSE_COMPLETED: on_course_completed,
}


@dataclass(frozen=True)
class Standing:
    """One assignment with its progress: a row of a program's progress report, or
    of a user's own programs."""

    program_id: uuid.UUID
    title: str
    onboarding: bool
    user_id: uuid.UUID
    due_at: datetime | None
    courses_total: int
    courses_done: int

    def summary(self, now: datetime) -> Summary:
        return summarize(self.courses_total, self.courses_done, self.due_at, now)


_STANDINGS = """
    SELECT a.program_id, p.title, p.onboarding, a.user_id, a.due_at,
           count(pc.course_id) AS courses_total,
           count(cp.completed_at) AS courses_done
    FROM programs.assignments a
    JOIN programs.programs p ON p.id = a.program_id
    LEFT JOIN programs.program_courses pc ON pc.program_id = a.program_id
    LEFT JOIN programs.course_progress cp
        ON cp.user_id = a.user_id AND cp.course_id = pc.course_id
"""
_GROUP = """
    GROUP BY a.program_id, p.title, p.onboarding, a.user_id, a.due_at, a.assigned_at
    ORDER BY a.assigned_at, a.program_id, a.user_id
"""


async def of_program(
    pool: asyncpg.Pool, program_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[Standing], int]:
    """The standing of everyone assigned to a program, earliest assigned first,
    and how many are assigned."""
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await conn.fetch(
            _STANDINGS + "WHERE a.program_id = $1" + _GROUP + " LIMIT $2 OFFSET $3",
            program_id,
            limit,
            offset,
        )
        total = await conn.fetchval(
            "SELECT count(*) FROM programs.assignments WHERE program_id = $1",
            program_id,
        )
    return [_standing(row) for row in rows], total


async def of_user(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[Standing]:
    """The standing of a user in every program assigned to them, earliest first."""
    rows = await pool.fetch(_STANDINGS + "WHERE a.user_id = $1" + _GROUP, user_id)
    return [_standing(row) for row in rows]


def _standing(row: asyncpg.Record) -> Standing:
    return Standing(
        program_id=row["program_id"],
        title=row["title"],
        onboarding=row["onboarding"],
        user_id=row["user_id"],
        due_at=row["due_at"],
        courses_total=row["courses_total"],
        courses_done=row["courses_done"],
    )


def _enrollment(event: Event) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]:
    return (
        uuid_field(event, "user_id"),
        uuid_field(event, "course_id"),
        optional_uuid_field(event, "enrollment_id"),
    )
