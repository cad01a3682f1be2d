"""Fixtures of the users service's tests: a database of their own in the harness's
Postgres, a key folder, and the app driven in process as the gateway would."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from services.users.app import create_app
from services.users.keys import create_key
from services.users.migrate import upgrade
from services.users.settings import Settings

ISSUER = "campus-users-test"
AUDIENCE = "campus-api-test"
PASSWORD = "correct-horse-9"
POLL_DEADLINE_S = 10.0

T = TypeVar("T")


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


@pytest.fixture(scope="session")
def server_dsn(stack: Any) -> str:
    """The DSN of the harness's Postgres (its default database)."""
    return str(stack["postgres"].dsn)


@pytest.fixture(scope="session")
def make_database(server_dsn: str, worker_id: str) -> Iterator[Callable[[str], str]]:
    """A factory of empty databases, dropped at the end of the session."""
    made: list[str] = []

    def make(purpose: str) -> str:
        name = f"users_{purpose}_{worker_id}_{secrets.token_hex(3)}"
        asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}"'))
        made.append(name)
        return database_url(server_dsn, name)

    yield make
    drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in made]
    asyncio.run(_admin(server_dsn, *drops))


@pytest.fixture(scope="session")
def test_database(make_database: Callable[[str], str]) -> str:
    """This worker's database, with the users schema migrated into it."""
    url = make_database("test")
    upgrade(url)
    return url


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    create_key(folder)
    return folder


@pytest.fixture
def settings(test_database: str, keys_dir: Path, stack: Any) -> Settings:
    return Settings(
        database_url=test_database,
        redis_url=stack["redis"].url,
        keys_dir=keys_dir,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        keys_reload_s=0.05,
        keys_activation_s=0.5,
        # Its own stream: the stack's services must not see the tests' events.
        events_stream=f"test:users:{uuid.uuid4().hex}",
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The users app, started, behind an in-process HTTP client."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://users"
        ) as http,
    ):
        yield http


@pytest.fixture
async def db(test_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, to look behind the API."""
    connection = await asyncpg.connect(test_database)
    yield connection
    await connection.close()


def as_user(user_id: str, *roles: str) -> dict[str, str]:
    """The identity headers the gateway sets for a verified token."""
    return {"X-User-Id": user_id, "X-User-Roles": ",".join(roles or ("learner",))}


@pytest.fixture
def identity() -> Callable[..., dict[str, str]]:
    return as_user


@pytest.fixture
def register(
    client: httpx.AsyncClient,
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Register a user with a unique email; returns the body plus the password."""

    async def register_user(
        email: str | None = None, password: str = PASSWORD, full_name: str = "Ann Lee"
    ) -> dict[str, Any]:
        email = email or f"ann-{uuid.uuid4().hex[:12]}@example.org"
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": password, "full_name": full_name},
        )
        assert response.status_code == 201, response.text
        return {**response.json(), "password": password}

    return register_user


@pytest.fixture
def login(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Log a registered user in; returns the token pair."""

    async def login_user(user: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": user["email"], "password": user["password"]},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return login_user


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """Poll ``probe`` until ``done(value)``; on timeout fail with the last value."""

    async def poll(
        probe: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        *,
        what: str,
        deadline_s: float = POLL_DEADLINE_S,
    ) -> T:
        deadline = time.monotonic() + deadline_s
        while True:
            value = await probe()
            if done(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"waited {deadline_s}s for {what}; last seen: {value!r}")
            await asyncio.sleep(0.02)

    return poll


@pytest.fixture
def cli_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """The environment of a CLI run: ours without the service's variables."""
    service_variables = (
        "DATABASE_URL",
        "REDIS_URL",
        "USERS_KEYS_DIR",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
        "ADMIN_FULL_NAME",
    )

    def env(**variables: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in service_variables}
        return {**base, **variables}

    return env
