"""Programs: creating and finding them, adding courses, assigning users."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.api import FieldError, Problem, invalid
from services.common.identity import Admin
from services.common.request_log import request_context
from services.programs import assignments, catalog
from services.programs.runtime import Services
from services.programs.schemas import (
    AssignmentsOut,
    NewAssignments,
    NewCourse,
    NewProgram,
    ProgramOut,
    ProgramPage,
)

logger = logging.getLogger(__name__)

router = APIRouter()

MAX_PAGE = 200


@router.post("/api/v1/programs", status_code=201)
async def create_program(
    body: NewProgram, who: Admin, services: Services
) -> ProgramOut:
    """Create a program of existing courses; at most one is the onboarding program."""
    _reject_repeats("course_ids", body.course_ids)
    if body.onboarding:
        existing = await catalog.onboarding_program(services.pool)
        if existing is not None:
            raise _onboarding_taken(catalog.OnboardingTaken(existing))
    if body.course_ids:
        missing = await services.directory.missing_courses(body.course_ids)
        if missing:
            raise _unknown("course_ids", "course", missing)
    try:
        program = await catalog.create(
            services.pool,
            title=body.title,
            course_ids=body.course_ids,
            onboarding=body.onboarding,
        )
    except catalog.OnboardingTaken as exc:
        raise _onboarding_taken(exc) from exc
    logger.info(
        "admin %s created %sprogram %s with %d course(s)",
        who.user_id,
        "onboarding " if program.onboarding else "",
        program.id,
        len(program.course_ids),
        extra=request_context(),
    )
    return ProgramOut.of(program)


@router.get("/api/v1/programs")
async def list_programs(
    who: Admin,
    services: Services,
    onboarding: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ProgramPage:
    """Programs oldest first, a page at a time; ``onboarding=true`` finds the
    onboarding program."""
    programs, total = await catalog.page(
        services.pool, onboarding=onboarding, limit=limit, offset=offset
    )
    return ProgramPage(items=[ProgramOut.of(p) for p in programs], total=total)


@router.get("/api/v1/programs/{program_id}")
async def get_program(
    program_id: uuid.UUID, who: Admin, services: Services
) -> ProgramOut:
    """One program with its courses in order."""
    return ProgramOut.of(await _existing(services, program_id))


@router.post("/api/v1/programs/{program_id}/courses")
async def add_course(
    program_id: uuid.UUID, body: NewCourse, who: Admin, services: Services
) -> ProgramOut:
    """Add a course at the end of a program; everyone assigned gets it too."""
    program = await _existing(services, program_id)
    if body.course_id in program.course_ids:
        raise _course_in_program(program_id, body.course_id)
    if await services.directory.missing_courses([body.course_id]):
        raise _unknown("course_id", "course", [body.course_id])
    async with services.pool.acquire() as conn, conn.transaction():
        if not await catalog.lock(conn, program_id, share=False):
            raise _no_program(program_id)  # gone since it was read
        if not await catalog.append_course(conn, program_id, body.course_id):
            raise _course_in_program(program_id, body.course_id)
        program = await _existing(services, program_id, conn)
        republished = await assignments.republish(conn, program)
    logger.info(
        "admin %s added course %s to program %s; %d assigned user(s) get it",
        who.user_id,
        body.course_id,
        program_id,
        republished,
        extra=request_context(),
    )
    return ProgramOut.of(program)


@router.post("/api/v1/programs/{program_id}/assignments", status_code=201)
async def assign(
    program_id: uuid.UUID, body: NewAssignments, who: Admin, services: Services
) -> AssignmentsOut:
    """Assign users to a program; they are enrolled in every course of it. Users
    assigned already stay so (with the new due date, if one is given)."""
    _reject_repeats("user_ids", body.user_ids)
    await _existing(services, program_id)
    missing = await services.directory.missing_users(body.user_ids)
    if missing:
        raise _unknown("user_ids", "user", missing)
    outcome = await assignments.assign(
        services.pool, program_id, body.user_ids, body.due_at
    )
    if outcome is None:
        raise _no_program(program_id)  # gone since it was read
    logger.info(
        "admin %s assigned %d new user(s) to program %s (%d assigned already)",
        who.user_id,
        len(outcome.assigned),
        program_id,
        len(outcome.already_assigned),
        extra=request_context(),
    )
    return AssignmentsOut(
        program_id=program_id,
        assigned=outcome.assigned,
        already_assigned=outcome.already_assigned,
    )


async def _existing(
    services: Services, program_id: uuid.UUID, db: catalog.Db | None = None
) -> catalog.Program:
    program = await catalog.by_id(services.pool if db is None else db, program_id)
    if program is None:
        raise _no_program(program_id)
    return program


def _no_program(program_id: uuid.UUID) -> Problem:
    return Problem(404, f"there is no program {program_id}")


def _course_in_program(program_id: uuid.UUID, course_id: uuid.UUID) -> Problem:
    return Problem(409, f"course {course_id} is in program {program_id} already")


def _onboarding_taken(exc: catalog.OnboardingTaken) -> Problem:
    return Problem(409, str(exc), program_id=str(exc.existing.id))


def _unknown(field: str, kind: str, ids: Sequence[uuid.UUID]) -> Problem:
    listed = ", ".join(str(item) for item in ids)
    problem = invalid([FieldError(field, f"no {kind} has the id(s) {listed}")])
    problem.extra["unknown_ids"] = [str(item) for item in ids]
    return problem


def _reject_repeats(field: str, ids: Sequence[uuid.UUID]) -> None:
    repeated = [item for item, count in Counter(ids).items() if count > 1]
    if repeated:
        listed = ", ".join(str(item) for item in repeated)
        raise invalid([FieldError(field, f"lists {listed} more than once")])
