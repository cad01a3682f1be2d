"""Helpers of the learning service's tests: identities, requests, outbox
look-ups, and a stand-in for the users service."""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def as_user(user_id: str | uuid.UUID, *roles: str) -> dict[str, str]:
    """The identity headers the gateway sets for a verified token."""
    return {"X-User-Id": str(user_id), "X-User-Roles": ",".join(roles or ("learner",))}


def new_learner() -> dict[str, str]:
    """The identity of a learner nobody has seen before."""
    return as_user(uuid.uuid4())


ADMIN = as_user(uuid.uuid4(), "learner", "admin")


def user_id_of(identity: dict[str, str]) -> str:
    return identity["X-User-Id"]


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host, port = probe.getsockname()
    return f"http://{host}:{port}"


async def outbox(
    db: asyncpg.Connection, type_: str, **payload: Any
) -> list[dict[str, Any]]:
    """Payloads of the outbox events of ``type_`` that contain ``payload``."""
    rows = await db.fetch(
        """
        SELECT payload FROM learning.outbox
        WHERE type = $1 AND payload @> $2::jsonb ORDER BY seq
        """,
        type_,
        json.dumps(payload),
    )
    return [json.loads(row["payload"]) for row in rows]


@dataclass
class Directory:
    """What the stand-in users service knows; ``answer``, when set, is what it
    answers instead (a failure, a malformed body)."""

    url: str = ""
    names: dict[str, str] = field(default_factory=dict)
    answer: Response | None = None
    asked: list[str] = field(default_factory=list)

    def add(self, full_name: str) -> dict[str, str]:
        """The identity of a new learner the users service knows by ``full_name``."""
        user_id = str(uuid.uuid4())
        self.names[user_id] = full_name
        return as_user(user_id)

    async def internal_users(self, request: Request) -> Response:
        ids = request.query_params.get("ids", "")
        self.asked.append(ids)
        if self.answer is not None:
            return self.answer
        items = [
            {
                "id": user_id,
                "email": f"{user_id[:8]}@example.org",
                "full_name": self.names[user_id],
                "roles": ["learner"],
            }
            for user_id in ids.split(",")
            if user_id in self.names
        ]
        return JSONResponse({"items": items})


async def progress(
    client: httpx.AsyncClient,
    enrollment_id: str,
    lessons: list[str],
    learner: dict[str, str],
) -> httpx.Response:
    return await client.post(
        f"/api/v1/enrollments/{enrollment_id}/progress",
        json={"completed_lessons": lessons},
        headers=learner,
    )


async def complete(
    client: httpx.AsyncClient, enrollment_id: str, learner: dict[str, str]
) -> httpx.Response:
    return await client.post(
        f"/api/v1/enrollments/{enrollment_id}/complete", headers=learner
    )


def lesson_ids(course: dict[str, Any]) -> list[str]:
    return [lesson["id"] for lesson in course["lessons"]]
