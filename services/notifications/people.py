"""Who notifications go to: a projection of the users service's accounts.

``user.registered`` events fill it. A notification can be for someone not
projected yet (events of different services arrive in any order), so a miss
is answered by the users service's ``/internal/users`` and remembered.
Addresses and names never come from whoever triggers a notification.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import httpx

from services.common.internal import InternalClient, Unreachable
from services.notifications.errors import NotificationsError
from services.notifications.templates import Person

logger = logging.getLogger(__name__)

USERS_PATH = "/internal/users"


class DirectoryUnavailable(NotificationsError):
    """The users service could not say who a user is; worth asking again later."""


async def remember(conn: asyncpg.Connection, person: Person) -> None:
    """Store ``person``, or refresh what is stored about them."""
    await conn.execute(
        """INSERT INTO notifications.people (user_id, email, full_name)
            VALUES ($1, $2, $3)
            ON CONFLICT (user_id) DO UPDATE SET
                email = excluded.email,
                full_name = excluded.full_name,
                updated_at = now()""",
        uuid.UUID(person.user_id),
        person.email,
        person.full_name,
    )


async def projected(conn: asyncpg.Connection, user_id: uuid.UUID) -> Person | None:
    """The stored person, without asking the users service."""
    row = await conn.fetchrow(
        "SELECT email, full_name FROM notifications.people WHERE user_id = $1", user_id
    )
    if row is None:
        return None
    return Person(str(user_id), row["email"], row["full_name"])


class Directory:
    """The projection, backed by the users service for the people it lacks."""

    def __init__(self, users: InternalClient) -> None:
        self.users = users

    async def find(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> Person | None:
        """The person with ``user_id``; None when the users service has no such user.

        DirectoryUnavailable when the users service cannot be asked.
        """
        person = await projected(conn, user_id)
        if person is not None:
            return person
        person = await self._ask(user_id)
        if person is not None:
            await remember(conn, person)
            logger.info("learned of user %s from the users service", user_id)
        return person

    async def _ask(self, user_id: uuid.UUID) -> Person | None:
        try:
            answer = await self.users.get_json(USERS_PATH, {"ids": str(user_id)})
        except Unreachable as exc:
            raise DirectoryUnavailable(f"cannot look up user {user_id}: {exc}") from exc
        except httpx.HTTPStatusError as exc:
            raise DirectoryUnavailable(
                f"cannot look up user {user_id}: the users service answered "
                f"{exc.response.status_code} to {USERS_PATH}"
            ) from exc
        except ValueError as exc:
            raise DirectoryUnavailable(
                f"cannot look up user {user_id}: the users service's answer to "
                f"{USERS_PATH} is not JSON"
            ) from exc
        return _person(answer, user_id)


def _person(answer: Any, user_id: uuid.UUID) -> Person | None:
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise DirectoryUnavailable(
            f"cannot look up user {user_id}: the users service's answer to "
            f"{USERS_PATH} has no items list"
        )
    for item in items:
        if isinstance(item, dict) and item.get("id") == str(user_id):
            email, full_name = item.get("email"), item.get("full_name")
            if isinstance(email, str) and isinstance(full_name, str):
                return Person(str(user_id), email, full_name)
    return None
