"""The events the learning service publishes, with their payloads.

Each is written to ``learning.outbox`` inside the caller's transaction, the
one of the change it tells about (see ``services.common.events`` and
``docs/events.md``). Ids are strings, times RFC 3339 in UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from services.common.events import record
from services.learning import SCHEMA

ENROLLMENT_CREATED = "enrollment.created"
ENROLLMENT_PROGRESSED = "enrollment.progressed"
COURSE_COMPLETED = "course.completed"
CERTIFICATE_ISSUED = "certificate.issued"


async def enrollment_created(
    conn: asyncpg.Connection,
    *,
    enrollment_id: uuid.UUID,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
) -> str:
    return await record(
        conn,
        SCHEMA,
        ENROLLMENT_CREATED,
        {
            "enrollment_id": str(enrollment_id),
            "user_id": str(user_id),
            "course_id": str(course_id),
        },
    )


async def enrollment_progressed(
    conn: asyncpg.Connection,
    *,
    enrollment_id: uuid.UUID,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
    progress: int,
) -> str:
    return await record(
        conn,
        SCHEMA,
        ENROLLMENT_PROGRESSED,
        {
            "enrollment_id": str(enrollment_id),
            "user_id": str(user_id),
            "course_id": str(course_id),
            "progress": progress,
        },
    )


async def course_completed(
    conn: asyncpg.Connection,
    *,
    enrollment_id: uuid.UUID,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
    course_title: str,
    completed_at: datetime,
) -> str:
    return await record(
        conn,
        SCHEMA,
        COURSE_COMPLETED,
        {
            "enrollment_id": str(enrollment_id),
            "user_id": str(user_id),
            "course_id": str(course_id),
            "course_title": course_title,
            "completed_at": rfc3339(completed_at),
        },
    )


async def certificate_issued(
    conn: asyncpg.Connection,
    *,
    certificate_id: uuid.UUID,
    code: str,
    user_id: uuid.UUID,
    user_name: str,
    course_id: uuid.UUID,
    course_title: str,
    issued_at: datetime,
) -> str:
    return await record(
        conn,
        SCHEMA,
        CERTIFICATE_ISSUED,
        {
            "certificate_id": str(certificate_id),
            "code": code,
            "user_id": str(user_id),
            "user_name": user_name,
            "course_id": str(course_id),
            "course_title": course_title,
            "issued_at": rfc3339(issued_at),
        },
    )


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
