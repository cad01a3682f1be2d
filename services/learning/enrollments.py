"""Learners' enrollments in courses, the lessons they have done, and completion.

An enrollment is ``enrolled`` until its first lesson is done, then
``in_progress``; it becomes ``completed`` only when the learner completes it
with every lesson done, which issues its certificate. Each change publishes
its event in its own transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.learning import certificates, events
from services.learning.certificates import Certificate
from services.learning.courses import UnknownCourse
from services.learning.errors import Conflict, Invalid, NotFound

ENROLLED = "enrolled"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"


class UnknownEnrollment(NotFound):
    def __init__(self, enrollment_id: uuid.UUID) -> None:
        # Also said for another learner's enrollment: its existence stays private.
        super().__init__(f"you have no enrollment {enrollment_id}")


class AlreadyEnrolled(Conflict):
    def __init__(self, course_id: uuid.UUID) -> None:
        super().__init__(f"you are already enrolled in course {course_id}")


class AlreadyCompleted(Conflict):
    def __init__(self, enrollment_id: uuid.UUID) -> None:
        super().__init__(f"enrollment {enrollment_id} is already completed")


class LessonsRemain(Conflict):
    def __init__(self, enrollment_id: uuid.UUID, remaining: int, total: int) -> None:
        super().__init__(
            f"enrollment {enrollment_id} cannot be completed yet: {remaining} of "
            f"its {total} lesson(s) remain"
        )
        self.remaining = remaining


class ForeignLessons(Invalid):
    SHOWN = 5

    def __init__(self, course_id: uuid.UUID, lesson_ids: Sequence[uuid.UUID]) -> None:
        listed = ", ".join(str(lesson_id) for lesson_id in lesson_ids[: self.SHOWN])
        if len(lesson_ids) > self.SHOWN:
            listed += f" and {len(lesson_ids) - self.SHOWN} more"
        super().__init__(
            "completed_lessons", f"not lesson(s) of course {course_id}: {listed}"
        )


@dataclass(frozen=True)
class Enrollment:
    id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    course_title: str
    status: str
    lesson_count: int
    completed_lessons: list[uuid.UUID]
    enrolled_at: datetime
    completed_at: datetime | None

    @property
    def progress(self) -> int:
        """The percentage of lessons done, rounded down: 100 means all of them."""
        return len(self.completed_lessons) * 100 // self.lesson_count

    @property
    def remaining(self) -> int:
        return self.lesson_count - len(self.completed_lessons)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Enrollment:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            course_id=row["course_id"],
            course_title=row["course_title"],
            status=row["status"],
            lesson_count=row["lesson_count"],
            completed_lessons=list(row["completed_lessons"]),
            enrolled_at=row["enrolled_at"],
            completed_at=row["completed_at"],
        )


async def enroll(
    pool: asyncpg.Pool, user_id: uuid.UUID, course_id: uuid.UUID
) -> Enrollment:
    """Enroll the learner; UnknownCourse or AlreadyEnrolled when that cannot be."""
    async with pool.acquire() as conn, conn.transaction():
        exists = await conn.fetchval(
            "SELECT true FROM learning.courses WHERE id = $1", course_id
        )
        if not exists:
            raise UnknownCourse(course_id)
        enrollment_id = await conn.fetchval(
            """
            INSERT INTO learning.enrollments (id, user_id, course_id)
            VALUES ($1, $2, $3)
            ON CONFLICT (user_id, course_id) DO NOTHING RETURNING id
            """,
            uuid.uuid4(),
            user_id,
            course_id,
        )
        if enrollment_id is None:
            raise AlreadyEnrolled(course_id)
        await events.enrollment_created(
            conn, enrollment_id=enrollment_id, user_id=user_id, course_id=course_id
        )
        return await _one(conn, enrollment_id, user_id)


async def enroll_in_all(
    conn: asyncpg.Connection, user_id: uuid.UUID, course_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Enroll the learner in those of ``course_ids`` that exist and are not yet
    theirs, in the caller's transaction; returns the new enrollments' ids."""
    rows = await conn.fetch(
        """
        INSERT INTO learning.enrollments (id, user_id, course_id)
        SELECT gen_random_uuid(), $1, id FROM learning.courses
        WHERE id = ANY($2::uuid[])
        ON CONFLICT (user_id, course_id) DO NOTHING
        RETURNING id, course_id
        """,
        user_id,
        list(dict.fromkeys(course_ids)),
    )
    order = {course_id: n for n, course_id in enumerate(course_ids)}
    rows.sort(key=lambda row: order[row["course_id"]])
    for row in rows:
        await events.enrollment_created(
            conn, enrollment_id=row["id"], user_id=user_id, course_id=row["course_id"]
        )
    return [row["id"] for row in rows]


async def of_user(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID
) -> list[Enrollment]:
    """The learner's enrollments, newest first."""
    rows = await db.fetch(
        _SELECT + "WHERE e.user_id = $1 ORDER BY e.enrolled_at DESC, e.id DESC",
        user_id,
    )
    return [Enrollment.from_row(row) for row in rows]


async def owned(
    db: asyncpg.Pool | asyncpg.Connection, enrollment_id: uuid.UUID, user_id: uuid.UUID
) -> Enrollment:
    """The learner's enrollment; UnknownEnrollment when it is not theirs."""
    return await _one(db, enrollment_id, user_id)


async def record_progress(
    pool: asyncpg.Pool,
    enrollment_id: uuid.UUID,
    user_id: uuid.UUID,
    lesson_ids: Sequence[uuid.UUID],
) -> Enrollment:
    """Mark ``lesson_ids`` done (again is fine) and publish the progress if any
    is new; ForeignLessons when one is not a lesson of the enrollment's course."""
    lesson_ids = list(dict.fromkeys(lesson_ids))
    async with pool.acquire() as conn, conn.transaction():
        row = await _lock(conn, enrollment_id, user_id)
        course_id = row["course_id"]
        known = await conn.fetch(
            """
            SELECT id FROM learning.lessons
            WHERE course_id = $1 AND id = ANY($2::uuid[])
            """,
            course_id,
            lesson_ids,
        )
        known_ids = {r["id"] for r in known}
        foreign = [lesson_id for lesson_id in lesson_ids if lesson_id not in known_ids]
        if foreign:
            raise ForeignLessons(course_id, foreign)
        added = await conn.fetch(
            """
            INSERT INTO learning.enrollment_lessons (enrollment_id, lesson_id)
            SELECT $1, unnest($2::uuid[])
            ON CONFLICT DO NOTHING RETURNING lesson_id
            """,
            enrollment_id,
            lesson_ids,
        )
        if added and row["status"] == ENROLLED:
            await conn.execute(
                "UPDATE learning.enrollments SET status = $2 WHERE id = $1",
                enrollment_id,
                IN_PROGRESS,
            )
        enrollment = await _one(conn, enrollment_id, user_id)
        if added:
            await events.enrollment_progressed(
                conn,
                enrollment_id=enrollment_id,
                user_id=user_id,
                course_id=course_id,
                progress=enrollment.progress,
            )
    return enrollment


def check_completable(enrollment: Enrollment) -> None:
    """AlreadyCompleted or LessonsRemain when ``enrollment`` cannot be completed."""
    if enrollment.status == COMPLETED:
        raise AlreadyCompleted(enrollment.id)
    if enrollment.remaining:
        raise LessonsRemain(
            enrollment.id, enrollment.remaining, enrollment.lesson_count
        )


async def complete(
    pool: asyncpg.Pool,
    enrollment_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    user_name: str,
) -> tuple[Enrollment, Certificate]:
    """Complete the enrollment and issue its certificate in ``user_name``;
    publishes ``course.completed`` and ``certificate.issued``."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, enrollment_id, user_id)
        # Checked again under the lock: another request may have completed it.
        check_completable(await _one(conn, enrollment_id, user_id))
        await conn.execute(
            """
            UPDATE learning.enrollments SET status = $2, completed_at = now()
            WHERE id = $1
            """,
            enrollment_id,
            COMPLETED,
        )
        enrollment = await _one(conn, enrollment_id, user_id)
        assert enrollment.completed_at is not None  # set just above
        await events.course_completed(
            conn,
            enrollment_id=enrollment.id,
            user_id=user_id,
            course_id=enrollment.course_id,
            course_title=enrollment.course_title,
            completed_at=enrollment.completed_at,
        )
        certificate = await certificates.issue(
            conn,
            enrollment_id=enrollment.id,
            user_id=user_id,
            course_id=enrollment.course_id,
            course_title=enrollment.course_title,
            user_name=user_name,
        )
    return enrollment, certificate


_SELECT = """
    SELECT e.id, e.user_id, e.course_id, c.title AS course_title, e.status,
        c.lesson_count, e.enrolled_at, e.completed_at,
        ARRAY(
            SELECT l.id FROM learning.enrollment_lessons d
            JOIN learning.lessons l ON l.id = d.lesson_id
            WHERE d.enrollment_id = e.id ORDER BY l.position
        ) AS completed_lessons
    FROM learning.enrollments e JOIN learning.courses c ON c.id = e.course_id
"""


async def _one(
    db: asyncpg.Pool | asyncpg.Connection, enrollment_id: uuid.UUID, user_id: uuid.UUID
) -> Enrollment:
    row = await db.fetchrow(
        _SELECT + "WHERE e.id = $1 AND e.user_id = $2", enrollment_id, user_id
    )
    if row is None:
        raise UnknownEnrollment(enrollment_id)
    return Enrollment.from_row(row)


async def _lock(
    conn: asyncpg.Connection, enrollment_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record:
    """The enrollment's row, locked until the transaction ends."""
    row = await conn.fetchrow(
        """
        SELECT course_id, status FROM learning.enrollments
        WHERE id = $1 AND user_id = $2 FOR UPDATE
        """,
        enrollment_id,
        user_id,
    )
    if row is None:
        raise UnknownEnrollment(enrollment_id)
    return row
