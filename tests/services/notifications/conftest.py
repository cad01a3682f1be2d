"""Fixtures of the notifications service's tests.

The service runs in process behind httpx, on a database of this worker's own
in the harness's Postgres, on the harness's Redis with streams of each test's
own, and sends to a real mail sink process of this module's own. The users
service it asks about recipients is a stand-in on a real port, answering as
``docs/events.md`` says the real one does.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from notifications_testkit import Serve, SinkProcess, UsersStandIn
from starlette.applications import Starlette
from starlette.routing import Route

from harness.mailbox import Mailbox
from services.notifications.app import create_app
from services.notifications.migrate import upgrade
from services.notifications.settings import Settings

SERVER_START_S = 10.0


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
        name = f"notifications_{purpose}_{worker_id}_{secrets.token_hex(4)}"
        asyncio.run(execute(server_dsn, f'CREATE DATABASE "{name}"'))
        names.append(name)
        return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))

    yield make
    drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names]
    asyncio.run(execute(server_dsn, *drops))


@pytest.fixture(scope="session")
def test_database(new_database: Callable[[str], str]) -> str:
    """This worker's database, with the notifications schema migrated into it."""
    url = new_database("test")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def users_service() -> Iterator[UsersStandIn]:
    """The stand-in users service, on a free loopback port, for the session."""
    stand_in = UsersStandIn()
    app = Starlette(routes=[Route("/internal/users", stand_in.internal_users)])
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
    stand_in.url = f"http://{host}:{port}"
    yield stand_in
    server.should_exit = True
    thread.join(SERVER_START_S)


@pytest.fixture
def users(users_service: UsersStandIn) -> Iterator[UsersStandIn]:
    """The stand-in users service, answering normally at the start of each test."""
    users_service.failing = False
    users_service.answer = None
    users_service.asked.clear()
    yield users_service
    users_service.failing = False
    users_service.answer = None


@pytest.fixture(scope="module")
def mail_sink() -> Iterator[SinkProcess]:
    """A mail sink process of this module's own."""
    sink = SinkProcess()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def mailbox(mail_sink: SinkProcess) -> Iterator[Mailbox]:
    with Mailbox(mail_sink.url) as client:
        yield client


@pytest.fixture
def spare_sink() -> Iterator[SinkProcess]:
    """A mail sink of this test's own, not started: nothing listens on its
    ports until the test starts it."""
    sink = SinkProcess()
    yield sink
    sink.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def settings(
    test_database: str,
    redis_url: str,
    users: UsersStandIn,
    mail_sink: SinkProcess,
    redis: aioredis.Redis,
) -> AsyncIterator[Settings]:
    """Settings whose streams are this test's own, deleted after it; quick
    retries, so that failures show within a test's patience."""
    tag = uuid.uuid4().hex[:12]
    current = Settings(
        database_url=test_database,
        redis_url=redis_url,
        users_urls=users.url,
        smtp_host="127.0.0.1",
        smtp_port=mail_sink.smtp_port,
        mail_from="Campus <noreply@campus.test>",
        max_attempts=5,
        backoff_s=0.05,
        backoff_max_s=0.2,
        smtp_timeout_s=5.0,
        queue_stream=f"test:notifications:{tag}",
        events_stream=f"test:events:{tag}",
    )
    yield current
    await redis.delete(current.queue_stream, current.events_stream)
    # What a test queued with the workers off would otherwise be relayed by a
    # later test's workers, to a stream nobody reads.
    await execute(
        test_database,
        f"""UPDATE notifications.outbox SET published_at = now()
            WHERE published_at IS NULL AND stream = '{current.queue_stream}'""",
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def serve() -> Serve:
    """Starts the app: ``async with serve(settings) as http: ...``; more
    settings as keywords (``serve(settings, smtp_port=...)``)."""

    @asynccontextmanager
    async def started(
        settings: Settings, *, workers: bool = True, **changes: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(replace(settings, **changes), workers=workers)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://notifications"
            ) as http,
        ):
            yield http

    return started


@pytest.fixture
async def pool(test_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database, for a sender run outside the app."""
    created = await asyncpg.create_pool(test_database, min_size=1, max_size=4)
    yield created
    await created.close()


@pytest.fixture
async def db(test_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, to look behind the API."""
    connection = await asyncpg.connect(test_database)
    yield connection
    await connection.close()
