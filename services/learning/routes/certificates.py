"""Certificates: the caller's own, and public verification by code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from services.common.identity import CurrentUser
from services.common.text import Storable
from services.learning import certificates
from services.learning.runtime import Services
from services.learning.schemas import CertificateList, CertificateOut, Verification

router = APIRouter()


@router.get("/api/v1/certificates/me")
async def my_certificates(who: CurrentUser, services: Services) -> CertificateList:
    """The caller's certificates, newest first."""
    found = await certificates.of_user(services.pool, who.user_id)
    return CertificateList(items=[CertificateOut.of(c) for c in found])


@router.get("/api/v1/certificates/{code}/verify")
async def verify(
    code: Annotated[str, Path(max_length=certificates.MAX_CODE_LENGTH), Storable],
    services: Services,
) -> Verification:
    """Whether a certificate with this code was issued, to whom, for what.
    Needs no identity: the code is what a learner shows to others."""
    certificate = await certificates.by_code(services.pool, code)
    return Verification(
        valid=True,
        user_name=certificate.user_name,
        course_title=certificate.course_title,
        issued_at=certificate.issued_at,
    )
