"""Onboarding: a newly registered user is assigned to the onboarding program.

The consumer group reads the stream from its beginning, so a ``user.registered``
may be handled long after it happened; only users registered since the
onboarding program was created are assigned to it, never earlier ones. The
assignment has no due date.
"""

from __future__ import annotations

import logging

import asyncpg

from services.common.events import Event
from services.programs import assignments, catalog
from services.programs.payloads import time_field, uuid_field

logger = logging.getLogger(__name__)

USER_REGISTERED = "user.registered"


async def on_user_registered(conn: asyncpg.Connection, event: Event) -> None:
    user_id = uuid_field(event, "user_id")
    registered_at = time_field(event, "occurred_at", event.occurred_at)
    program = await catalog.onboarding_program(conn)
    if program is None:
        logger.debug("user %s registered; there is no onboarding program", user_id)
        return
    if registered_at < program.created_at:
        logger.info(
            "user %s registered at %s, before onboarding program %s existed; "
            "not assigned",
            user_id,
            registered_at.isoformat(),
            program.id,
        )
        return
    await catalog.lock(conn, program.id, share=True)
    program = await catalog.by_id(conn, program.id)
    assert program is not None  # locked above
    outcome = await assignments.assign_locked(conn, program, [user_id], None)
    if outcome.assigned:
        logger.info(
            "assigned new user %s to onboarding program %s", user_id, program.id
        )


HANDLERS = {USER_REGISTERED: on_user_registered}
