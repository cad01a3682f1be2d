"""Calls from other services, straight to the replicas; not in the gateway's table."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.learning import courses
from services.learning.errors import Invalid
from services.learning.runtime import Services
from services.learning.schemas import CourseBrief, CourseBriefs

router = APIRouter()

MAX_IDS = 500


@router.get("/internal/courses", include_in_schema=False)
async def course_briefs(
    services: Services,
    ids: Annotated[str, Query(description="course ids, comma-separated")] = "",
) -> CourseBriefs:
    """Title and lesson count of those of ``ids`` that are courses."""
    found = await courses.summaries(services.pool, _ids(ids))
    return CourseBriefs(
        items=[
            CourseBrief(id=s.id, title=s.title, lesson_count=s.lesson_count)
            for s in found
        ]
    )


def _ids(value: str) -> list[uuid.UUID]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if len(parts) > MAX_IDS:
        raise Invalid("ids", f"lists {len(parts)} ids; at most {MAX_IDS} at once")
    ids: list[uuid.UUID] = []
    for part in parts:
        try:
            ids.append(uuid.UUID(part))
        except ValueError:
            raise Invalid("ids", f"{part[:64]!r} is not a course id") from None
    return ids
