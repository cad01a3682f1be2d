"""Certificates of completed courses in ``learning.certificates``.

A certificate is issued once per enrollment, on completion, and never
changes: it keeps the learner's name and the course's title as they were.
Its ``code`` is what a learner shows to prove it; anyone can verify a code.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.learning import events
from services.learning.errors import NotFound

CODE_BYTES = 16
MAX_CODE_LENGTH = 64


class UnknownCertificate(NotFound):
    def __init__(self, code: str) -> None:
        super().__init__(f"no certificate has the code {code!r}")


@dataclass(frozen=True)
class Certificate:
    id: uuid.UUID
    code: str
    enrollment_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    course_title: str
    user_name: str
    issued_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Certificate:
        return cls(
            id=row["id"],
            code=row["code"],
            enrollment_id=row["enrollment_id"],
            user_id=row["user_id"],
            course_id=row["course_id"],
            course_title=row["course_title"],
            user_name=row["user_name"],
            issued_at=row["issued_at"],
        )


async def issue(
    conn: asyncpg.Connection,
    *,
    enrollment_id: uuid.UUID,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
    course_title: str,
    user_name: str,
) -> Certificate:
    """Issue the certificate of an enrollment and publish ``certificate.issued``;
    inside the caller's transaction, the one that completes the enrollment."""
    row = await conn.fetchrow(
        """
        INSERT INTO learning.certificates
            (id, code, enrollment_id, user_id, course_id, course_title, user_name)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING id, code, enrollment_id, user_id, course_id, course_title,
            user_name, issued_at
        """,
        uuid.uuid4(),
        secrets.token_urlsafe(CODE_BYTES),
        enrollment_id,
        user_id,
        course_id,
        course_title,
        user_name,
    )
    certificate = Certificate.from_row(row)
    await events.certificate_issued(
        conn,
        certificate_id=certificate.id,
        code=certificate.code,
        user_id=user_id,
        user_name=user_name,
        course_id=course_id,
        course_title=course_title,
        issued_at=certificate.issued_at,
    )
    return certificate


async def of_user(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID
) -> list[Certificate]:
    """The learner's certificates, newest first."""
    rows = await db.fetch(
        """
        SELECT id, code, enrollment_id, user_id, course_id, course_title,
            user_name, issued_at
        FROM learning.certificates WHERE user_id = $1
        ORDER BY issued_at DESC, id DESC
        """,
        user_id,
    )
    return [Certificate.from_row(row) for row in rows]


async def by_code(db: asyncpg.Pool | asyncpg.Connection, code: str) -> Certificate:
    """The certificate with ``code``; UnknownCertificate when there is none."""
    row = await db.fetchrow(
        """
        SELECT id, code, enrollment_id, user_id, course_id, course_title,
            user_name, issued_at
        FROM learning.certificates WHERE code = $1
        """,
        code,
    )
    if row is None:
        raise UnknownCertificate(code)
    return Certificate.from_row(row)
