"""Notifications as stored: queueing a new one, and reading them back.

A notification is queued in one transaction with its first history entry and
an outbox row for the send queue, so it is sent exactly when it exists. Its
``dedupe_key`` is unique: the same trigger seen twice queues nothing new.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.common import events
from services.notifications import SCHEMA
from services.notifications.templates import Person, Rendered

QUEUED_EVENT = "notification.queued"

# What clients see of the internal states (see the package's docstring).
PUBLIC_STATUS = {
    "queued": "queued",
    "sending": "queued",
    "retrying": "queued",
    "sent": "sent",
    "failed": "failed",
}


@dataclass(frozen=True)
class Notification:
    id: uuid.UUID
    user_id: uuid.UUID
    template: str
    subject: str
    body: str
    state: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    failed_reason: str | None

    @property
    def status(self) -> str:
        """``queued``, ``sent`` or ``failed``: the state as clients see it."""
        return PUBLIC_STATUS[self.state]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Notification:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            template=row["template"],
            subject=row["subject"],
            body=row["body"],
            state=row["status"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            sent_at=row["sent_at"],
            failed_reason=row["failed_reason"],
        )


@dataclass(frozen=True)
class Entry:
    """One line of a notification's history."""

    at: datetime
    status: str
    attempt: int | None
    detail: str


async def enqueue(
    conn: asyncpg.Connection,
    *,
    person: Person,
    template: str,
    data: Mapping[str, Any],
    rendered: Rendered,
    dedupe_key: str,
    origin: str,
    stream: str,
) -> uuid.UUID | None:
    """Queue a notification in the caller's transaction; its id, or None when
    one with ``dedupe_key`` exists already."""
    notification_id = await conn.fetchval(
        """INSERT INTO notifications.notifications
            (id, user_id, template, data, dedupe_key, to_email, to_name, subject,
             body)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING id""",
        uuid.uuid4(),
        uuid.UUID(person.user_id),
        template,
        json.dumps(data, default=str),
        dedupe_key,
        person.email,
        person.full_name,
        rendered.subject,
        rendered.body,
    )
    if notification_id is None:
        return None
    await add_history(conn, notification_id, "queued", None, origin)
    await events.record(
        conn,
        SCHEMA,
        QUEUED_EVENT,
        {"notification_id": str(notification_id)},
        stream=stream,
    )
    return uuid.UUID(str(notification_id))


async def add_history(
    conn: asyncpg.Connection,
    notification_id: uuid.UUID,
    status: str,
    attempt: int | None,
    detail: str,
) -> None:
    await conn.execute(
        """INSERT INTO notifications.history (notification_id, status, attempt, detail)
            VALUES ($1, $2, $3, $4)""",
        notification_id,
        status,
        attempt,
        detail,
    )


async def find(
    db: asyncpg.Pool | asyncpg.Connection, notification_id: uuid.UUID
) -> Notification | None:
    row = await db.fetchrow(
        """SELECT id, user_id, template, subject, body, status, attempts,
               created_at, sent_at, failed_reason
           FROM notifications.notifications WHERE id = $1""",
        notification_id,
    )
    return None if row is None else Notification.from_row(row)


async def of_user(
    db: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID, *, limit: int
) -> list[Notification]:
    """The user's notifications, newest first."""
    rows = await db.fetch(
        """SELECT id, user_id, template, subject, body, status, attempts,
               created_at, sent_at, failed_reason
           FROM notifications.notifications WHERE user_id = $1
           ORDER BY created_at DESC, id DESC LIMIT $2""",
        user_id,
        limit,
    )
    return [Notification.from_row(row) for row in rows]


async def history(
    db: asyncpg.Pool | asyncpg.Connection, notification_id: uuid.UUID
) -> list[Entry]:
    """The notification's history, oldest first."""
    rows = await db.fetch(
        """SELECT at, status, attempt, detail FROM notifications.history
            WHERE notification_id = $1 ORDER BY seq""",
        notification_id,
    )
    return [Entry(r["at"], r["status"], r["attempt"], r["detail"]) for r in rows]
