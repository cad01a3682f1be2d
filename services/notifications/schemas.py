"""Request and response bodies of the public API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.notifications.records import Entry, Notification

Status = Literal["queued", "sent", "failed"]


class TriggerRequest(BaseModel):
    """An admin's request to notify a user."""

    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    template: str = Field(min_length=1, max_length=100)
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="the template's fields, e.g. {subject, body} for announcement",
    )


class Queued(BaseModel):
    id: uuid.UUID
    status: Status = "queued"


class Summary(BaseModel):
    id: uuid.UUID
    template: str
    subject: str
    status: Status
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, notification: Notification) -> Summary:
        return cls(
            id=notification.id,
            template=notification.template,
            subject=notification.subject,
            status=notification.status,  # type: ignore[arg-type]
            created_at=notification.created_at,
            sent_at=notification.sent_at,
        )


class Inbox(BaseModel):
    items: list[Summary]


class HistoryEntry(BaseModel):
    at: datetime
    status: str = Field(description="queued, retrying, sent or failed")
    attempt: int | None = Field(description="the attempt it reports; null if none")
    detail: str

    @classmethod
    def of(cls, entry: Entry) -> HistoryEntry:
        return cls(
            at=entry.at, status=entry.status, attempt=entry.attempt, detail=entry.detail
        )


class Detail(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    template: str
    subject: str
    body: str
    status: Status
    created_at: datetime
    sent_at: datetime | None
    failed_reason: str | None
    attempts: int
    history: list[HistoryEntry]

    @classmethod
    def of(cls, notification: Notification, history: list[Entry]) -> Detail:
        return cls(
            id=notification.id,
            user_id=notification.user_id,
            template=notification.template,
            subject=notification.subject,
            body=notification.body,
            status=notification.status,  # type: ignore[arg-type]
            created_at=notification.created_at,
            sent_at=notification.sent_at,
            failed_reason=notification.failed_reason,
            attempts=notification.attempts,
            history=[HistoryEntry.of(entry) for entry in history],
        )
