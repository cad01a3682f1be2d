"""What the learning service does with other services' events.

``program.assigned``: the learner is enrolled in every course of the program
that exists here and that they are not enrolled in yet. The consumer runs
each handler in the transaction that records the event as handled, so a
redelivered event enrolls no one twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

import asyncpg

from services.common.events import Event, Handler
from services.learning import enrollments

logger = logging.getLogger(__name__)

PROGRAM_ASSIGNED = "program.assigned"


async def on_program_assigned(conn: asyncpg.Connection, event: Event) -> None:
    """Enroll the assigned learner in the program's courses."""
    payload = event.payload
    try:
        user_id = uuid.UUID(str(payload["user_id"]))
        raw_ids = payload["course_ids"]
        if not isinstance(raw_ids, list):
            raise TypeError(f"course_ids is {type(raw_ids).__name__}, not a list")
        course_ids = [uuid.UUID(str(course_id)) for course_id in raw_ids]
    except (KeyError, TypeError, ValueError) as exc:
        # Redelivery cannot mend a payload: it is skipped, and said so.
        logger.error(
            "skipped %s event %s: its payload is malformed: %r",
            event.type,
            event.id,
            exc,
        )
        return
    created = await enrollments.enroll_in_all(conn, user_id, course_ids)
    logger.info(
        "program %s assigned to user %s: %d new enrollment(s) of %d course(s)",
        payload.get("program_id"),
        user_id,
        len(created),
        len(course_ids),
    )


HANDLERS: Mapping[str, Handler] = {PROGRAM_ASSIGNED: on_program_assigned}
