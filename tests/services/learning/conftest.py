"""Fixtures of the learning service's tests.

The service runs in process behind httpx, on a database of this worker's own
in the harness's Postgres and on the harness's Redis. The users service it
asks for learners' names is a stand-in served on a real port (a test double
of another service, see ``learning_testkit.Directory``).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from learning_testkit import ADMIN, Directory
from starlette.applications import Starlette
from starlette.routing import Route

from services.learning.app import create_app
from services.learning.migrate import upgrade
from services.learning.settings import Settings

SERVER_START_S = 10.0

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def execute(dsn: str, *statements: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def server_dsn(stack: Any) -> str:
    """The harness's Postgres, its default database."""
    return str(stack["postgres"].dsn)


@pytest.fixture(scope="session")
def redis_url(stack: Any) -> str:
    return str(stack["redis"].url)


@pytest.fixture(scope="session")
def new_database(server_dsn: str, worker_id: str) -> Iterator[Callable[[str], str]]:
    """Makes empty databases named after their purpose; drops them at the end."""
    names: list[str] = []

    def make(purpose: str) -> str:
        name = f"learning_{purpose}_{worker_id}_{secrets.token_hex(4)}"
        asyncio.run(execute(server_dsn, f'CREATE DATABASE "{name}"'))
        names.append(name)
        return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))

    yield make
    drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names]
    asyncio.run(execute(server_dsn, *drops))


@pytest.fixture(scope="session")
def test_database(new_database: Callable[[str], str]) -> str:
    """This worker's database, with the learning schema migrated into it."""
    url = new_database("test")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def users_service() -> Iterator[Directory]:
    """The stand-in users service, on a free loopback port, for the session."""
    directory = Directory()
    app = Starlette(routes=[Route("/internal/users", directory.internal_users)])
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, name="users-stand-in", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(
                f"the stand-in users service did not start in {SERVER_START_S}s"
            )
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    directory.url = f"http://{host}:{port}"
    yield directory
    server.should_exit = True
    thread.join(SERVER_START_S)


@pytest.fixture
def directory(users_service: Directory) -> Iterator[Directory]:
    """The stand-in users service, answering normally at the start of each test."""
    users_service.answer = None
    users_service.asked.clear()
    yield users_service
    users_service.answer = None


@pytest.fixture
def settings(test_database: str, redis_url: str, directory: Directory) -> Settings:
    return Settings(
        database_url=test_database,
        redis_url=redis_url,
        users_urls=(directory.url,),
        users_timeout_s=2.0,
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def serve() -> Serve:
    """Starts the app: ``async with serve(settings) as http: ...``."""

    @asynccontextmanager
    async def started(
        settings: Settings, *, event_workers: bool = False
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings, event_workers=event_workers)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://learning"
            ) as http,
        ):
            yield http

    return started


@pytest.fixture
async def client(serve: Serve, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The learning app, started without its event workers, behind httpx."""
    async with serve(settings) as http:
        yield http


@pytest.fixture
async def db(test_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, to look behind the API."""
    connection = await asyncpg.connect(test_database)
    yield connection
    await connection.close()


@pytest.fixture
def make_course(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Creates a course as an admin; returns its body."""

    async def create(
        title: str | None = None,
        lessons: int | list[Any] = 3,
        description: str = "A course made by a test.",
    ) -> dict[str, Any]:
        titles = (
            [f"Lesson {n}" for n in range(1, lessons + 1)]
            if isinstance(lessons, int)
            else lessons
        )
        response = await client.post(
            "/api/v1/courses",
            json={
                "title": title or f"Course {uuid.uuid4().hex[:8]}",
                "description": description,
                "lessons": titles,
            },
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


@pytest.fixture
def enroll(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Enrolls a learner (identity headers) in a course (id); returns the body."""

    async def enroll_in(course_id: str, learner: dict[str, str]) -> dict[str, Any]:
        response = await client.post(
            f"/api/v1/courses/{course_id}/enrollments", headers=learner
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return enroll_in
