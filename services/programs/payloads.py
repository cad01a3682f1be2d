"""Reading the fields of events this service consumes; errors name the event and
the field, so that a message left in the dead-letter stream explains itself."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.common.events import Event


class BadPayload(ValueError):
    """An event lacks a field or carries one that cannot be read."""


def uuid_field(event: Event, key: str) -> uuid.UUID:
    value = event.payload.get(key)
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadPayload(_wrong(event, key, value, "a uuid")) from None


def optional_uuid_field(event: Event, key: str) -> uuid.UUID | None:
    return None if event.payload.get(key) is None else uuid_field(event, key)


def percent_field(event: Event, key: str) -> int:
    value = event.payload.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= 100
    ):
        raise BadPayload(_wrong(event, key, value, "a number from 0 to 100"))
    return int(value)


def time_field(event: Event, key: str, value: object) -> datetime:
    """``value`` (the field ``key`` of ``event``) as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BadPayload(_wrong(event, key, value, "an RFC 3339 time with an offset"))
    return parsed


def _wrong(event: Event, key: str, value: object, expected: str) -> str:
    return f"{event.type} event {event.id}: {key}={value!r} is not {expected}"
