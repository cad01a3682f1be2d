"""Learners' names, as the users service knows them.

A certificate carries its learner's full name, asked for at completion over
``GET {users}/internal/users?ids=ID`` (see docs/events.md).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx

from services.common.internal import InternalClient, Unreachable
from services.learning.errors import Conflict, Unavailable

logger = logging.getLogger(__name__)


class NameUnavailable(Unavailable):
    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the users service cannot tell the learner's name ({reason}); "
            "nothing was changed, try again later"
        )


class UnknownLearner(Conflict):
    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(
            f"the users service has no user {user_id}, and a certificate needs "
            "the learner's name"
        )


async def full_name(users: InternalClient, user_id: uuid.UUID) -> str:
    """The full name of ``user_id``; NameUnavailable when the users service does
    not answer usefully, UnknownLearner when it does not know the user."""
    try:
        body = await users.get_json("/internal/users", {"ids": str(user_id)})
    except Unreachable as exc:
        raise NameUnavailable("no replica answered") from exc
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        logger.warning("the users service answered %d to /internal/users", status)
        raise NameUnavailable(f"it answered HTTP {status}") from exc
    except (httpx.HTTPError, ValueError) as exc:  # ValueError: not JSON
        raise NameUnavailable(f"its answer is unreadable: {exc}") from exc
    name = _name_in(body, user_id)
    if name is None:
        raise UnknownLearner(user_id)
    return name


def _name_in(body: Any, user_id: uuid.UUID) -> str | None:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise NameUnavailable("its answer has no list of items")
    for item in items:
        if isinstance(item, dict) and _same_id(item.get("id"), user_id):
            name = item.get("full_name")
            if not isinstance(name, str) or not name.strip():
                raise NameUnavailable(f"user {user_id} has no full_name")
            return name
    return None


def _same_id(value: Any, user_id: uuid.UUID) -> bool:
    try:
        return uuid.UUID(str(value)) == user_id
    except ValueError:
        return False
