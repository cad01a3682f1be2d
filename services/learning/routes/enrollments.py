"""Enrolling, recording progress and completing: a learner's own enrollments.

Only the learner may see or change an enrollment; anyone else, admins
included, is told it does not exist.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter

from services.common.identity import CurrentUser
from services.common.request_log import request_context
from services.learning import enrollments, learners
from services.learning.runtime import Services
from services.learning.schemas import (
    CertificateOut,
    Completion,
    EnrollmentList,
    EnrollmentOut,
    ProgressReport,
)

logger = logging.getLogger(__name__)

router = APIRouter()


@router.post("/api/v1/courses/{course_id}/enrollments", status_code=201)
async def enroll(
    course_id: uuid.UUID, who: CurrentUser, services: Services
) -> EnrollmentOut:
    """Enroll the caller in the course."""
    enrollment = await enrollments.enroll(services.pool, who.user_id, course_id)
    logger.info(
        "user %s enrolled in course %s: enrollment %s",
        who.user_id,
        course_id,
        enrollment.id,
        extra=request_context(),
    )
    return EnrollmentOut.of(enrollment)


@router.get("/api/v1/enrollments/me")
async def my_enrollments(who: CurrentUser, services: Services) -> EnrollmentList:
    """The caller's enrollments, newest first, with progress and status."""
    found = await enrollments.of_user(services.pool, who.user_id)
    return EnrollmentList(items=[EnrollmentOut.of(e) for e in found])


@router.post("/api/v1/enrollments/{enrollment_id}/progress")
async def record_progress(
    enrollment_id: uuid.UUID,
    body: ProgressReport,
    who: CurrentUser,
    services: Services,
) -> EnrollmentOut:
    """Mark lessons of the course done; lessons already done stay done."""
    enrollment = await enrollments.record_progress(
        services.pool, enrollment_id, who.user_id, body.completed_lessons
    )
    return EnrollmentOut.of(enrollment)


@router.post("/api/v1/enrollments/{enrollment_id}/complete")
async def complete(
    enrollment_id: uuid.UUID, who: CurrentUser, services: Services
) -> Completion:
    """Complete the course once every lesson is done, and get its certificate."""
    # Checked before asking the users service, and again under a lock after.
    enrollments.check_completable(
        await enrollments.owned(services.pool, enrollment_id, who.user_id)
    )
    name = await learners.full_name(services.users, who.user_id)
    enrollment, certificate = await enrollments.complete(
        services.pool, enrollment_id, who.user_id, user_name=name
    )
    logger.info(
        "user %s completed course %s; certificate %s issued",
        who.user_id,
        enrollment.course_id,
        certificate.id,
        extra=request_context(),
    )
    return Completion(
        enrollment=EnrollmentOut.of(enrollment),
        certificate=CertificateOut.of(certificate),
    )
