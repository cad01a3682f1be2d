"""Request and response bodies of the public and internal API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from services.common.text import Storable
from services.learning.certificates import Certificate
from services.learning.courses import Course, Lesson, Summary
from services.learning.enrollments import Enrollment

MAX_TITLE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_LESSONS = 500

Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_LENGTH),
    Storable,
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION_LENGTH),
    Storable,
]


class NewLesson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title


def _lesson_object(value: Any) -> Any:
    """A lesson may be given by its title alone."""
    if isinstance(value, str):
        return {"title": value}
    if not isinstance(value, dict):
        raise ValueError("must be a lesson title or an object with a title")
    return value


LessonInput = Annotated[
    NewLesson,
    BeforeValidator(_lesson_object, json_schema_input_type=str | NewLesson),
]


class NewCourse(BaseModel):
    """A course and its lessons, in order; each lesson a title or ``{title}``."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    lessons: Annotated[list[LessonInput], Field(min_length=1, max_length=MAX_LESSONS)]


class LessonOut(BaseModel):
    id: uuid.UUID
    title: str
    position: int = Field(description="1 for the first lesson")

    @classmethod
    def of(cls, lesson: Lesson) -> LessonOut:
        return cls(id=lesson.id, title=lesson.title, position=lesson.position)


class CourseOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    lessons: list[LessonOut]
    created_at: datetime

    @classmethod
    def of(cls, course: Course) -> CourseOut:
        return cls(
            id=course.id,
            title=course.title,
            description=course.description,
            lessons=[LessonOut.of(lesson) for lesson in course.lessons],
            created_at=course.created_at,
        )


class CourseSummary(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    lesson_count: int
    created_at: datetime

    @classmethod
    def of(cls, summary: Summary) -> CourseSummary:
        return cls(
            id=summary.id,
            title=summary.title,
            description=summary.description,
            lesson_count=summary.lesson_count,
            created_at=summary.created_at,
        )


class CoursePage(BaseModel):
    items: list[CourseSummary]
    total: int = Field(description="how many courses match, on all pages")


class CourseCursorPage(BaseModel):
    items: list[CourseSummary]
    next_cursor: str | None = Field(
        description="pass as cursor for the next page; null on the last page"
    )


class ProgressReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    completed_lessons: Annotated[
        list[uuid.UUID],
        Field(
            min_length=1,
            max_length=MAX_LESSONS,
            description="ids of lessons done; ones already done are fine",
        ),
    ]


class EnrollmentOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    course_title: str
    status: str = Field(description="enrolled, in_progress or completed")
    progress: int = Field(description="percent of the lessons done, 0 to 100")
    completed_lessons: list[uuid.UUID] = Field(description="in the course's order")
    enrolled_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, enrollment: Enrollment) -> EnrollmentOut:
        return cls(
            id=enrollment.id,
            user_id=enrollment.user_id,
            course_id=enrollment.course_id,
            course_title=enrollment.course_title,
            status=enrollment.status,
            progress=enrollment.progress,
            completed_lessons=enrollment.completed_lessons,
            enrolled_at=enrollment.enrolled_at,
            completed_at=enrollment.completed_at,
        )


class EnrollmentList(BaseModel):
    items: list[EnrollmentOut]


class CertificateOut(BaseModel):
    id: uuid.UUID
    code: str = Field(description="what anyone can verify the certificate by")
    course_id: uuid.UUID
    course_title: str
    user_name: str
    issued_at: datetime

    @classmethod
    def of(cls, certificate: Certificate) -> CertificateOut:
        return cls(
            id=certificate.id,
            code=certificate.code,
            course_id=certificate.course_id,
            course_title=certificate.course_title,
            user_name=certificate.user_name,
            issued_at=certificate.issued_at,
        )


class CertificateList(BaseModel):
    items: list[CertificateOut]


class Completion(BaseModel):
    enrollment: EnrollmentOut
    certificate: CertificateOut


class Verification(BaseModel):
    valid: bool
    user_name: str
    course_title: str
    issued_at: datetime


class CourseBrief(BaseModel):
    id: uuid.UUID
    title: str
    lesson_count: int


class CourseBriefs(BaseModel):
    items: list[CourseBrief]
