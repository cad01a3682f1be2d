"""Progress: per user of a program for admins, and the caller's own programs.

This router is included before the programs one, so that ``/programs/me`` is
not taken for a program id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.api import Problem
from services.common.identity import Admin, CurrentUser
from services.programs import catalog, progress
from services.programs.runtime import Services
from services.programs.schemas import (
    MyProgram,
    MyPrograms,
    ProgramProgress,
    UserProgress,
)

router = APIRouter()

MAX_PAGE = 1000


@router.get("/api/v1/programs/me")
async def my_programs(who: CurrentUser, services: Services) -> MyPrograms:
    """The caller's programs, earliest assigned first, with progress."""
    standings = await progress.of_user(services.pool, who.user_id)
    now = datetime.now(UTC)
    return MyPrograms(items=[MyProgram.of(s, now) for s in standings])


@router.get("/api/v1/programs/{program_id}/progress")
async def program_progress(
    program_id: uuid.UUID,
    who: Admin,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ProgramProgress:
    """Everyone assigned to a program, earliest assigned first: courses done,
    percent, and whether they are overdue."""
    program = await catalog.by_id(services.pool, program_id)
    if program is None:
        raise Problem(404, f"there is no program {program_id}")
    standings, total = await progress.of_program(
        services.pool, program_id, limit=limit, offset=offset
    )
    now = datetime.now(UTC)
    return ProgramProgress(
        program_id=program.id,
        title=program.title,
        items=[UserProgress.of(s, now) for s in standings],
        total=total,
    )
