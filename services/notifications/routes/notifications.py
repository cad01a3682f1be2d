"""The caller's notifications, one notification in detail, and admin triggers."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.api import FieldError, Problem, invalid
from services.common.identity import ADMIN, Admin, CurrentUser
from services.common.request_log import request_context
from services.notifications import records
from services.notifications.errors import MissingData, UnknownTemplate
from services.notifications.people import DirectoryUnavailable
from services.notifications.runtime import Services
from services.notifications.schemas import (
    Detail,
    Inbox,
    Queued,
    Summary,
    TriggerRequest,
)
from services.notifications.triggers import UnknownUser

logger = logging.getLogger(__name__)

router = APIRouter()

MAX_PAGE = 200


@router.post("/api/v1/notifications", status_code=202)
async def trigger(body: TriggerRequest, who: Admin, services: Services) -> Queued:
    """Queue a notification for a user; it is sent in the background."""
    try:
        notification_id = await services.triggers.by_admin(
            services.pool, who.user_id, body.user_id, body.template, body.data
        )
    except UnknownTemplate as exc:
        raise invalid([FieldError("template", str(exc))]) from exc
    except MissingData as exc:
        raise invalid(
            [FieldError(f"data.{name}", why) for name, why in exc.problems.items()]
        ) from exc
    except UnknownUser as exc:
        raise invalid([FieldError("user_id", str(exc))]) from exc
    except DirectoryUnavailable as exc:
        raise Problem(503, f"{exc}; try again shortly") from exc
    logger.info(
        "admin %s queued %s notification %s for user %s",
        who.user_id, body.template, notification_id, body.user_id,
        extra=request_context(),
    )  # fmt: skip
    return Queued(id=notification_id)


@router.get("/api/v1/notifications/me")
async def mine(
    who: CurrentUser,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> Inbox:
    """The caller's notifications, newest first."""
    found = await records.of_user(services.pool, who.user_id, limit=limit)
    return Inbox(items=[Summary.of(notification) for notification in found])


@router.get("/api/v1/notifications/{notification_id}")
async def one(
    notification_id: uuid.UUID, who: CurrentUser, services: Services
) -> Detail:
    """A notification with its history; for admins and its recipient only."""
    notification = await records.find(services.pool, notification_id)
    # Someone else's notification is answered as if it did not exist.
    if notification is None or (
        notification.user_id != who.user_id and ADMIN not in who.roles
    ):
        raise Problem(404, f"there is no notification {notification_id}")
    history = await records.history(services.pool, notification_id)
    return Detail.of(notification, history)
