"""Helpers of the programs service's tests: fakes of the services it calls,
identity headers, waiting for events, and putting events on the stream."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.eventually import eventually
from services.common.events import STREAM, Event

T = TypeVar("T")

WAIT_S = 15.0
# Nothing listens on the discard port: connecting to it is refused at once.
CLOSED_URL = "http://127.0.0.1:9"


def as_user(user_id: uuid.UUID | str, *roles: str) -> dict[str, str]:
    """The identity headers the gateway sets for a verified token."""
    return {"X-User-Id": str(user_id), "X-User-Roles": ",".join(roles or ("learner",))}


ADMIN = as_user(uuid.uuid4(), "learner", "admin")


@dataclass
class FakeService:
    """Answers ``GET /internal/{kind}?ids=...`` with the records it was given."""

    kind: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, str]] = field(default_factory=list)
    # (status, body) to answer instead, e.g. (500, "") or (200, "nonsense").
    answer: tuple[int, str] | None = None

    def app(self) -> Starlette:
        return Starlette(routes=[Route(f"/internal/{self.kind}", self.lookup)])

    async def lookup(self, request: Request) -> Response:
        ids = request.query_params.get("ids", "")
        self.calls.append(
            {"ids": ids, "request_id": request.headers.get("X-Request-ID", "")}
        )
        if self.answer is not None:
            status, body = self.answer
            return Response(body, status_code=status, media_type="application/json")
        found = [self.records[i] for i in ids.split(",") if i in self.records]
        return JSONResponse({"items": found})


@dataclass
class Others:
    """The fake users and learning services and their base URLs."""

    users: FakeService
    learning: FakeService
    users_url: str
    learning_url: str

    def add_user(self, full_name: str = "Ann Lee") -> uuid.UUID:
        user_id = uuid.uuid4()
        self.users.records[str(user_id)] = {
            "id": str(user_id),
            "email": f"{user_id.hex[:12]}@example.org",
            "full_name": full_name,
            "roles": ["learner"],
        }
        return user_id

    def add_course(self, title: str = "Safety basics", lessons: int = 3) -> uuid.UUID:
        course_id = uuid.uuid4()
        self.learning.records[str(course_id)] = {
            "id": str(course_id),
            "title": title,
            "lesson_count": lessons,
        }
        return course_id


@dataclass
class Serving:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT_S)
        self.sock.close()


def serve(app: Any) -> Serving:
    """Serve ``app`` on a free loopback port in a thread, once it is listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    serving = Serving(f"http://127.0.0.1:{port}", server, thread, sock)
    try:
        eventually(
            lambda: server.started or not thread.is_alive(),
            what=f"a fake service to listen on port {port}",
            timeout_s=WAIT_S,
        )
    except AssertionError:
        serving.stop()
        raise
    if not thread.is_alive():
        sock.close()
        raise RuntimeError(f"the fake service on port {port} stopped at once")
    return serving


async def wait_until(
    probe: Callable[[], Coroutine[Any, Any, T]],
    until: Callable[[T], object],
    *,
    what: str,
    timeout_s: float = WAIT_S,
) -> T:
    """``harness.eventually`` for a coroutine probe: polls from a thread while
    this event loop (and the app's event workers on it) keeps running."""
    loop = asyncio.get_running_loop()

    def poll() -> T:
        return asyncio.run_coroutine_threadsafe(probe(), loop).result(timeout_s)

    return await asyncio.to_thread(
        eventually, poll, until=until, what=what, timeout_s=timeout_s
    )


async def publish(
    redis: aioredis.Redis,
    type_: str,
    payload: dict[str, Any],
    *,
    source: str = "learning",
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> str:
    """Put an event on the stream as another service's relay would; its id."""
    event = Event(
        id=event_id or str(uuid.uuid4()),
        type=type_,
        source=source,
        payload=payload,
        occurred_at=(occurred_at or datetime.now(UTC)).isoformat(),
    )
    fields: dict[Any, Any] = event.to_fields()
    await redis.xadd(STREAM, fields)
    return event.id


async def handled(db: asyncpg.Connection, event_id: str) -> None:
    """Wait until the app's consumer has handled (and recorded) an event."""
    await wait_until(
        lambda: db.fetchval(
            "SELECT count(*) FROM programs.processed_events WHERE event_id = $1",
            uuid.UUID(event_id),
        ),
        lambda count: count == 1,
        what=f"event {event_id} to be handled",
    )


async def outbox(db: asyncpg.Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The payloads of the program.assigned events recorded for a user, oldest
    first."""
    rows = await db.fetch(
        "SELECT payload FROM programs.outbox WHERE type = 'program.assigned' "
        "AND payload->>'user_id' = $1 ORDER BY seq",
        str(user_id),
    )
    return [json.loads(row["payload"]) for row in rows]
