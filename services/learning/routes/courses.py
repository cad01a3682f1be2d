"""The catalogue: creating courses, finding one, and listing them in two ways."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.identity import Admin, CurrentUser
from services.common.request_log import request_context
from services.common.text import Storable
from services.learning import courses, cursors
from services.learning.runtime import Services
from services.learning.schemas import (
    CourseCursorPage,
    CourseOut,
    CoursePage,
    CourseSummary,
    NewCourse,
)
from services.learning.search import MAX_TEXT_LENGTH

logger = logging.getLogger(__name__)

router = APIRouter()

MAX_PAGE = 100
DEFAULT_PAGE = 20
MAX_OFFSET = 1_000_000

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="courses per page")]
Text = Annotated[
    str | None,
    Query(
        max_length=MAX_TEXT_LENGTH,
        description="words of the title or description; the last may be a prefix",
    ),
    Storable,
]


@router.post("/api/v1/courses", status_code=201)
async def create_course(body: NewCourse, who: Admin, services: Services) -> CourseOut:
    """Create a course with its lessons, in the order given."""
    course = await courses.create(
        services.pool,
        title=body.title,
        description=body.description,
        lessons=[lesson.title for lesson in body.lessons],
    )
    logger.info(
        "admin %s created course %s with %d lesson(s)",
        who.user_id,
        course.id,
        len(course.lessons),
        extra=request_context(),
    )
    return CourseOut.of(course)


@router.get("/api/v1/courses")
async def list_courses(
    who: CurrentUser,
    services: Services,
    limit: Limit = DEFAULT_PAGE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    q: Text = None,
) -> CoursePage:
    """Courses newest first, a page at a time from ``offset``, with the total."""
    found, total = await courses.page(services.pool, limit=limit, offset=offset, text=q)
    return CoursePage(items=[CourseSummary.of(s) for s in found], total=total)


@router.get("/api/v2/courses")
async def list_courses_by_cursor(
    who: CurrentUser,
    services: Services,
    limit: Limit = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(
            max_length=cursors.MAX_CURSOR_LENGTH,
            description="next_cursor of the previous page; none for the first",
        ),
    ] = None,
    q: Text = None,
) -> CourseCursorPage:
    """Courses newest first, a page at a time after ``cursor``."""
    start = cursors.START if cursor is None else cursors.decode(cursor)
    found, more = await courses.after(services.pool, start, limit=limit, text=q)
    return CourseCursorPage(
        items=[CourseSummary.of(s) for s in found],
        next_cursor=cursors.encode(found[-1].position) if more else None,
    )


@router.get("/api/v1/courses/{course_id}")
async def get_course(
    course_id: uuid.UUID, who: CurrentUser, services: Services
) -> CourseOut:
    """A course with its lessons in order."""
    return CourseOut.of(await courses.by_id(services.pool, course_id))
