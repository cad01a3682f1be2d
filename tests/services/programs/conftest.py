"""Fixtures of the programs service's tests.

The service runs in process (httpx.ASGITransport) with its lifespan, so its
event workers run too, against the harness's Postgres (a database of this
worker's own) and Redis (a logical database of this worker's own, so that
its event stream is apart from the running stack's and the other worker's).
The users and learning services it calls are small fakes served on real
loopback ports.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from programs_testkit import ADMIN, FakeService, Others, serve

from services.common.events import DEAD_LETTERS, STREAM
from services.programs.app import create_app
from services.programs.migrate import upgrade
from services.programs.settings import Settings

# Logical Redis databases 0 (the running stack's) and 1-9 are left alone.
FIRST_REDIS_DB = 10


def database_url(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database of the same server."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def _admin(dsn: str, *statements: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


# -- databases -----------------------------------------------------------------


@pytest.fixture(scope="session")
def server_dsn(stack: Any) -> str:
    """The DSN of the harness's Postgres (its default database)."""
    return str(stack["postgres"].dsn)


@pytest.fixture(scope="session")
def make_database(server_dsn: str, worker_id: str) -> Iterator[Callable[..., str]]:
    """A factory of databases (empty, or copies of a template), dropped at the end
    of the session."""
    made: list[str] = []

    def make(purpose: str, template: str | None = None) -> str:
        name = f"programs_{purpose}_{worker_id}_{secrets.token_hex(3)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}"{copy}'))
        made.append(name)
        return database_url(server_dsn, name)

    yield make
    drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in made]
    asyncio.run(_admin(server_dsn, *reversed(drops)))


@pytest.fixture(scope="session")
def migrated_template(make_database: Callable[..., str]) -> str:
    """The name of a database with the programs schema migrated, that nothing
    stays connected to, so that fresh copies of it are quick to make."""
    url = make_database("template")
    upgrade(url)
    return urlsplit(url).path.lstrip("/")


@pytest.fixture(scope="session")
def shared_database(make_database: Callable[..., str], migrated_template: str) -> str:
    """This worker's database, shared by the tests that need no blank slate."""
    return make_database("shared", migrated_template)


@pytest.fixture
def fresh_database(make_database: Callable[..., str], migrated_template: str) -> str:
    """A migrated database of the test's own: no programs, no onboarding program."""
    return make_database("fresh", migrated_template)


@pytest.fixture
def database(shared_database: str) -> str:
    """The database the app under test uses; a module may override it."""
    return shared_database


@pytest.fixture
async def db(database: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the app's database, to look behind the API."""
    connection = await asyncpg.connect(database)
    yield connection
    await connection.close()


# -- redis ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(stack: Any, worker_id: str) -> Iterator[str]:
    """A logical database of the harness's Redis for this worker's event stream."""
    index = int(worker_id[2:]) if worker_id.startswith("gw") else 0
    url = urlunsplit(
        urlsplit(stack["redis"].url)._replace(path=f"/{FIRST_REDIS_DB + index}")
    )
    asyncio.run(_clear_streams(url))
    yield url
    asyncio.run(_clear_streams(url))


async def _clear_streams(url: str) -> None:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await client.delete(STREAM, DEAD_LETTERS)
    finally:
        await client.aclose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


# -- the users and learning services, faked ---------------------------------------


@pytest.fixture(scope="session")
def served_others() -> Iterator[Others]:
    users, learning = FakeService("users"), FakeService("courses")
    users_server, learning_server = serve(users.app()), serve(learning.app())
    try:
        yield Others(users, learning, users_server.url, learning_server.url)
    finally:
        users_server.stop()
        learning_server.stop()


@pytest.fixture
def others(served_others: Others) -> Iterator[Others]:
    """The fakes, answering normally again after each test."""
    yield served_others
    served_others.users.answer = served_others.learning.answer = None
    served_others.users.calls.clear()
    served_others.learning.calls.clear()


# -- the app -------------------------------------------------------------------


@pytest.fixture
def settings(database: str, redis_url: str, others: Others) -> Settings:
    return Settings(
        database_url=database,
        redis_url=redis_url,
        users_urls=(others.users_url,),
        learning_urls=(others.learning_url,),
        internal_timeout_s=2.0,
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The programs app, started, behind an in-process HTTP client."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://programs"
        ) as http,
    ):
        yield http


@pytest.fixture
def create_program(
    client: httpx.AsyncClient,
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create a program through the API; returns its body."""

    async def create(
        course_ids: list[uuid.UUID] | None = None,
        title: str = "Welcome aboard",
        onboarding: bool = False,
    ) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/programs",
            json={
                "title": title,
                "course_ids": [str(c) for c in course_ids or []],
                "onboarding": onboarding,
            },
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


@pytest.fixture
def assign(
    client: httpx.AsyncClient,
) -> Callable[..., Awaitable[httpx.Response]]:
    """Assign users to a program through the API."""

    async def assign_users(
        program_id: str, user_ids: list[uuid.UUID], due_at: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"user_ids": [str(u) for u in user_ids]}
        if due_at is not None:
            body["due_at"] = due_at
        return await client.post(
            f"/api/v1/programs/{program_id}/assignments", json=body, headers=ADMIN
        )

    return assign_users
