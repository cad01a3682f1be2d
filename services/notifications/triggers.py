"""What queues a notification: domain events, and admins.

Each trigger finds the recipient (``people``), renders the template and
queues the notification (``records.enqueue``). An event queues at most one
notification per template: its dedupe key is the event's id and the
template's name, so a redelivered event adds nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.common.events import Event, Handler
from services.notifications import people, records
from services.notifications.errors import MissingData, NotificationsError
from services.notifications.people import Directory
from services.notifications.templates import Person, template

logger = logging.getLogger(__name__)

TEMPLATE_OF_EVENT = {
    "user.registered": "welcome",
    "program.assigned": "program_assigned",
    "certificate.issued": "certificate_issued",
}


class UnknownUser(NotificationsError):
    """The users service has no user with this id."""

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"there is no user {user_id}")
        self.user_id = user_id


class Triggers:
    """Queues notifications on ``stream``, finding recipients in ``directory``."""

    def __init__(self, directory: Directory, stream: str) -> None:
        self.directory = directory
        self.stream = stream

    def handlers(self) -> dict[str, Handler]:
        """The domain event handlers, for the ``notifications`` consumer group."""
        return dict.fromkeys(TEMPLATE_OF_EVENT, self.on_event)

    async def by_admin(
        self,
        pool: asyncpg.Pool,
        admin_id: uuid.UUID,
        user_id: uuid.UUID,
        template_name: str,
        data: Mapping[str, Any],
    ) -> uuid.UUID:
        """Queue ``template_name`` for ``user_id``; returns the notification's id.

        UnknownTemplate, MissingData or UnknownUser for what the admin got
        wrong; DirectoryUnavailable when the users service cannot be asked.
        """
        chosen = template(template_name)
        problems = chosen.problems(data)
        if problems:
            raise MissingData(chosen.name, problems)
        async with pool.acquire() as conn:
            person = await self.directory.find(conn, user_id)
            if person is None:
                raise UnknownUser(user_id)
            async with conn.transaction():
                notification_id = await records.enqueue(
                    conn,
                    person=person,
                    template=chosen.name,
                    data=data,
                    rendered=chosen.render(person, data),
                    dedupe_key=f"admin:{uuid.uuid4()}",
                    origin=f"queued by admin {admin_id}",
                    stream=self.stream,
                )
        assert notification_id is not None  # the dedupe key is new
        return notification_id

    async def on_event(self, conn: asyncpg.Connection, event: Event) -> None:
        """Queue the notification of ``event``, in the consumer's transaction.

        An event that cannot make one (no such user, data missing) is logged
        and dropped; one that cannot be handled now (the users service does
        not answer) raises, and is delivered again later.
        """
        name = TEMPLATE_OF_EVENT[event.type]
        person = await self._recipient(conn, event)
        if person is None:
            return
        chosen = template(name)
        try:
            rendered = chosen.render(person, event.payload)
        except MissingData as exc:
            logger.error(
                "event %s (%s) makes no %s notification: %s",
                event.id, event.type, name, exc,
            )  # fmt: skip
            return
        notification_id = await records.enqueue(
            conn,
            person=person,
            template=name,
            data=event.payload,
            rendered=rendered,
            dedupe_key=f"{event.id}:{name}",
            origin=f"queued on event {event.type} {event.id}",
            stream=self.stream,
        )
        if notification_id is None:
            logger.debug("event %s queued its %s notification already", event.id, name)
            return
        logger.info(
            "queued %s notification %s for user %s on event %s",
            name, notification_id, person.user_id, event.id,
        )  # fmt: skip

    async def _recipient(self, conn: asyncpg.Connection, event: Event) -> Person | None:
        payload = event.payload
        try:
            user_id = uuid.UUID(str(payload["user_id"]))
        except (KeyError, ValueError):
            logger.error(
                "event %s (%s) names no user; no notification", event.id, event.type
            )
            return None
        if event.type == "user.registered":
            email, full_name = payload.get("email"), payload.get("full_name")
            if not isinstance(email, str) or not isinstance(full_name, str):
                logger.error(
                    "event %s (user.registered) lacks the email or full name of "
                    "user %s; no notification",
                    event.id, user_id,
                )  # fmt: skip
                return None
            person = Person(str(user_id), email, full_name)
            await people.remember(conn, person)
            return person
        found = await self.directory.find(conn, user_id)
        if found is None:
            logger.error(
                "event %s (%s) is for user %s, whom the users service does not "
                "know; no notification",
                event.id, event.type, user_id,
            )  # fmt: skip
        return found
