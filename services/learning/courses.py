"""Courses and their lessons in ``learning.courses``: creating, finding, listing.

Both listings show the newest courses first, by ``(created_at, id)``: the
offset one with a total, the keyset one from a position (``cursors``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.learning import search
from services.learning.cursors import START, Position
from services.learning.errors import NotFound


class UnknownCourse(NotFound):
    def __init__(self, course_id: uuid.UUID) -> None:
        super().__init__(f"there is no course {course_id}")
        self.course_id = course_id


@dataclass(frozen=True)
class Lesson:
    id: uuid.UUID
    title: str
    position: int


@dataclass(frozen=True)
class Course:
    id: uuid.UUID
    title: str
    description: str
    lessons: list[Lesson]
    created_at: datetime


@dataclass(frozen=True)
class Summary:
    id: uuid.UUID
    title: str
    description: str
    lesson_count: int
    created_at: datetime

    @property
    def position(self) -> Position:
        """Where the course stands in the listings."""
        return Position(self.created_at, self.id)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Summary:
        return cls(
            id=row["id"],
            title=row["title"],
            description=row["description"],
            lesson_count=row["lesson_count"],
            created_at=row["created_at"],
        )


async def create(
    pool: asyncpg.Pool, *, title: str, description: str, lessons: Sequence[str]
) -> Course:
    """A new course whose lessons have ``lessons`` as titles, in that order."""
    course_id = uuid.uuid4()
    made = [Lesson(uuid.uuid4(), title, n) for n, title in enumerate(lessons, 1)]
    async with pool.acquire() as conn, conn.transaction():
        created_at = await conn.fetchval(
            """
            INSERT INTO learning.courses (id, title, description, lesson_count)
            VALUES ($1, $2, $3, $4) RETURNING created_at
            """,
            course_id,
            title,
            description,
            len(made),
        )
        await conn.executemany(
            """
            INSERT INTO learning.lessons (id, course_id, title, position)
            VALUES ($1, $2, $3, $4)
            """,
            [(lesson.id, course_id, lesson.title, lesson.position) for lesson in made],
        )
    return Course(course_id, title, description, made, created_at)


async def by_id(db: asyncpg.Pool | asyncpg.Connection, course_id: uuid.UUID) -> Course:
    """The course with its lessons in order; UnknownCourse when there is none."""
    row = await db.fetchrow(
        """
        SELECT id, title, description, created_at FROM learning.courses
        WHERE id = $1
        """,
        course_id,
    )
    if row is None:
        raise UnknownCourse(course_id)
    lessons = await db.fetch(
        """
        SELECT id, title, position FROM learning.lessons
        WHERE course_id = $1 ORDER BY position
        """,
        course_id,
    )
    return Course(
        id=row["id"],
        title=row["title"],
        description=row["description"],
        lessons=[Lesson(r["id"], r["title"], r["position"]) for r in lessons],
        created_at=row["created_at"],
    )


async def page(
    pool: asyncpg.Pool, *, limit: int, offset: int, text: str | None = None
) -> tuple[list[Summary], int]:
    """``limit`` courses from ``offset``, newest first, and how many match.

    ``text`` narrows both to courses matching it (see ``search``); a blank
    one does not narrow, one without any word matches nothing.
    """
    query = search.parse(text)
    if query is not None and query.matches_nothing:
        return [], 0
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        if query is None:
            rows = await conn.fetch(_PAGE, limit, offset)
            total = await conn.fetchval(_COUNT)
        else:
            rows = await conn.fetch(_PAGE_MATCHING, limit, offset, query.text)
            total = await conn.fetchval(_COUNT_MATCHING, query.text)
    return [Summary.from_row(row) for row in rows], int(total)


async def after(
    db: asyncpg.Pool | asyncpg.Connection,
    position: Position = START,
    *,
    limit: int,
    text: str | None = None,
) -> tuple[list[Summary], bool]:
    """Up to ``limit`` courses after ``position``, newest first, and whether
    more follow; ``text`` narrows them as in ``page``."""
    query = search.parse(text)
    if query is not None and query.matches_nothing:
        return [], False
    args = (position.created_at, position.id, limit + 1)
    if query is None:
        rows = await db.fetch(_AFTER, *args)
    else:
        rows = await db.fetch(_AFTER_MATCHING, *args, query.text)
    summaries = [Summary.from_row(row) for row in rows]
    return summaries[:limit], len(summaries) > limit


async def summaries(
    db: asyncpg.Pool | asyncpg.Connection, course_ids: Sequence[uuid.UUID]
) -> list[Summary]:
    """The courses among ``course_ids`` that exist, in no particular order."""
    rows = await db.fetch(
        """
        SELECT id, title, description, lesson_count, created_at
        FROM learning.courses WHERE id = ANY($1::uuid[])
        """,
        list(course_ids),
    )
    return [Summary.from_row(row) for row in rows]


# One statement per variant, so that each gets a plan that uses its index.
_PAGE = """
    SELECT id, title, description, lesson_count, created_at FROM learning.courses
    ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2
"""
_PAGE_MATCHING = """
    SELECT id, title, description, lesson_count, created_at FROM learning.courses
    WHERE search @@ learning.search_query($3)
    ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2
"""
_COUNT = "SELECT count(*) FROM learning.courses"
_COUNT_MATCHING = """
    SELECT count(*) FROM learning.courses WHERE search @@ learning.search_query($1)
"""
_AFTER = """
    SELECT id, title, description, lesson_count, created_at FROM learning.courses
    WHERE (created_at, id) < ($1, $2)
    ORDER BY created_at DESC, id DESC LIMIT $3
"""
_AFTER_MATCHING = """
    SELECT id, title, description, lesson_count, created_at FROM learning.courses
    WHERE (created_at, id) < ($1, $2) AND search @@ learning.search_query($4)
    ORDER BY created_at DESC, id DESC LIMIT $3
"""
