"""Request and response bodies of the public API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from services.common.text import Storable
from services.programs.catalog import Program
from services.programs.progress import Standing

MAX_COURSES = 200
MAX_USERS_PER_CALL = 500

Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Storable,
]

_TIME_FORMAT = "an RFC 3339 time with an offset, like 2030-01-31T17:00:00Z"


def _utc_time(value: object) -> datetime:
    """An RFC 3339 time in UTC. Only text is read: a number is not taken for
    seconds since 1970, as a lax parser would."""
    if not isinstance(value, str):
        raise ValueError(f"must be {_TIME_FORMAT}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be {_TIME_FORMAT}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"must be {_TIME_FORMAT}; it has no offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "is out of range: in UTC it falls outside the years 1 to 9999"
        ) from None


UtcTime = Annotated[
    datetime, BeforeValidator(_utc_time, json_schema_input_type=datetime)
]


class NewProgram(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    course_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_COURSES)
    onboarding: StrictBool = False


class NewCourse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course_id: uuid.UUID


class NewAssignments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_USERS_PER_CALL)
    due_at: UtcTime | None = None


class ProgramOut(BaseModel):
    id: uuid.UUID
    title: str
    course_ids: list[uuid.UUID]
    onboarding: bool
    created_at: datetime

    @classmethod
    def of(cls, program: Program) -> ProgramOut:
        return cls(
            id=program.id,
            title=program.title,
            course_ids=program.course_ids,
            onboarding=program.onboarding,
            created_at=program.created_at,
        )


class ProgramPage(BaseModel):
    items: list[ProgramOut]
    total: int


class AssignmentsOut(BaseModel):
    program_id: uuid.UUID
    assigned: list[uuid.UUID]
    already_assigned: list[uuid.UUID]


class UserProgress(BaseModel):
    user_id: uuid.UUID
    due_at: datetime | None
    courses_total: int
    courses_done: int
    percent: int
    overdue: bool

    @classmethod
    def of(cls, standing: Standing, now: datetime) -> UserProgress:
        summary = standing.summary(now)
        return cls(
            user_id=standing.user_id,
            due_at=standing.due_at,
            courses_total=summary.courses_total,
            courses_done=summary.courses_done,
            percent=summary.percent,
            overdue=summary.overdue,
        )


class ProgramProgress(BaseModel):
    program_id: uuid.UUID
    title: str
    items: list[UserProgress]
    total: int = Field(description="how many users are assigned")


class MyProgram(BaseModel):
    program_id: uuid.UUID
    title: str
    onboarding: bool
    due_at: datetime | None
    courses_total: int
    courses_done: int
    percent: int
    overdue: bool

    @classmethod
    def of(cls, standing: Standing, now: datetime) -> MyProgram:
        summary = standing.summary(now)
        return cls(
            program_id=standing.program_id,
            title=standing.title,
            onboarding=standing.onboarding,
            due_at=standing.due_at,
            courses_total=summary.courses_total,
            courses_done=summary.courses_done,
            percent=summary.percent,
            overdue=summary.overdue,
        )


class MyPrograms(BaseModel):
    items: list[MyProgram]
