"""Positions in the course listing, and the opaque cursors that carry them.

The listing is ordered newest first by ``(created_at, id)``; a cursor holds
the position of the last course a page showed, and the next page starts
after it. Cursors are URL-safe base64 of a small JSON object, which clients
must not read or build: its layout may change.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from services.learning.errors import Invalid

MAX_CURSOR_LENGTH = 200


class BadCursor(Invalid):
    def __init__(self) -> None:
        super().__init__(
            "cursor", "is not a cursor this API returned; start again without one"
        )


@dataclass(frozen=True)
class Position:
    created_at: datetime
    id: uuid.UUID


# Before every course: the first page starts after it.
START = Position(datetime.max.replace(tzinfo=UTC), uuid.UUID(int=2**128 - 1))


def encode(position: Position) -> str:
    """The cursor of ``position``."""
    data = {"t": position.created_at.astimezone(UTC).isoformat(), "i": str(position.id)}
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> Position:
    """The position in ``cursor``; BadCursor when it is not one ``encode`` made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        created_at = datetime.fromisoformat(data["t"])
        course_id = uuid.UUID(data["i"])
    except (
        binascii.Error,
        UnicodeDecodeError,
        ValueError,
        KeyError,
        TypeError,
    ) as exc:
        raise BadCursor from exc
    if created_at.tzinfo is None:
        raise BadCursor
    try:
        # encode wrote UTC; a time whose offset takes it before year 1 or past
        # 9999 has no UTC form, and Postgres would refuse it.
        created_at = created_at.astimezone(UTC)
    except OverflowError as exc:
        raise BadCursor from exc
    return Position(created_at, course_id)
