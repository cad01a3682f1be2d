"""Settings, starting and probing the service, its migrations, and its command
lines as the stack runs them."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from programs_testkit import WAIT_S

from harness.eventually import eventually
from services.common import redis_client
from services.common.errors import ConfigError, DatabaseError
from services.programs.app import create_app
from services.programs.migrate import downgrade, upgrade
from services.programs.settings import Settings

REQUIRED = {
    "DATABASE_URL": "postgresql://campus@127.0.0.1:5432/campus",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "USERS_URLS": "http://127.0.0.1:8001,http://127.0.0.1:8002",
    "LEARNING_URLS": "http://127.0.0.1:8003",
}
SERVICE_VARIABLES = (*REQUIRED, "INTERNAL_TIMEOUT_S")


def test_settings_from_env_defaults():
    settings = Settings.from_env(REQUIRED)

    assert settings == Settings(
        database_url="postgresql://campus@127.0.0.1:5432/campus",
        redis_url="redis://127.0.0.1:6379/0",
        users_urls=("http://127.0.0.1:8001", "http://127.0.0.1:8002"),
        learning_urls=("http://127.0.0.1:8003",),
        internal_timeout_s=5.0,
    )


def test_settings_from_env_overrides():
    settings = Settings.from_env(
        {**REQUIRED, "INTERNAL_TIMEOUT_S": "0.5", "USERS_URLS": " http://u:1 , "}
    )

    assert settings.internal_timeout_s == 0.5
    assert settings.users_urls == ("http://u:1",)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_settings_missing_variable_is_named(name: str):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, name: " "})

    assert str(raised.value) == f"{name} is not set; the programs service needs it"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("USERS_URLS", "users:8000", "USERS_URLS lists 'users:8000', which is not "
         "an http(s) URL"),
        ("LEARNING_URLS", "http://a:1,ftp://b", "LEARNING_URLS lists 'ftp://b', "
         "which is not an http(s) URL"),
        ("LEARNING_URLS", ",", "LEARNING_URLS lists no URL; the programs service "
         "needs one"),
        ("INTERNAL_TIMEOUT_S", "61", "INTERNAL_TIMEOUT_S='61' is over the maximum "
         "of 60"),
        ("INTERNAL_TIMEOUT_S", "soon", "INTERNAL_TIMEOUT_S='soon' is not a number "
         "of seconds"),
    ],
)  # fmt: skip
def test_settings_bad_value_is_named(name: str, value: str, message: str):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, name: value})

    assert str(raised.value) == message


@pytest.mark.anyio
async def test_startup_with_unreachable_database_names_database_url(
    settings: Settings,
):
    url = f"postgresql://nobody:hunter2@127.0.0.1:9/{uuid.uuid4().hex}"
    app = create_app(dataclasses.replace(settings, database_url=url))

    with pytest.raises(DatabaseError) as raised:
        async with app.router.lifespan_context(app):
            pass

    assert str(raised.value).startswith(
        "cannot connect to DATABASE_URL=postgresql://nobody:***@127.0.0.1:9/"
    )
    assert "hunter2" not in str(raised.value)


@pytest.mark.anyio
async def test_healthz_and_readyz_answer_200(client: httpx.AsyncClient):
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


@pytest.mark.anyio
async def test_readyz_without_redis_is_503_naming_it(settings: Settings):
    app = create_app(dataclasses.replace(settings, redis_url="redis://127.0.0.1:9/0"))

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://programs"
        ) as client,
    ):
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("Redis does not answer: ")


@pytest.mark.anyio
async def test_readyz_without_postgres_is_503_naming_it(settings: Settings):
    app = create_app(settings)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://programs"
        ) as client,
    ):
        app.state.runtime.pool.terminate()  # as if the database went away
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["detail"].startswith("the database does not answer: ")


@pytest.mark.anyio
async def test_redis_client_gives_up_on_a_silent_redis(settings: Settings):
    app = create_app(settings)

    async with app.router.lifespan_context(app):
        options = app.state.runtime.redis.connection_pool.connection_kwargs

    assert options["socket_timeout"] == redis_client.SOCKET_TIMEOUT_S
    assert options["socket_connect_timeout"] == redis_client.CONNECT_TIMEOUT_S


@pytest.mark.anyio
async def test_unknown_route_is_404_problem(client: httpx.AsyncClient):
    response = await client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["detail"] == "there is no route /api/v1/nothing-here"


def test_migrations_down_and_up_again(make_database: Callable[..., str]):
    url = make_database("updown")
    upgrade(url)

    downgrade(url, "base")
    after_down = tables(url)
    upgrade(url)

    assert after_down == {"alembic_version"}
    assert tables(url) == {
        "programs", "program_courses", "assignments", "course_progress", "outbox",
        "processed_events", "alembic_version",
    }  # fmt: skip


def tables(url: str) -> set[str]:
    async def names() -> set[str]:
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'programs'"
            )
        finally:
            await connection.close()
        return {row["table_name"] for row in rows}

    return asyncio.run(names())


def environment(**variables: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    return {**base, **variables}


def test_migrate_command_brings_the_schema_up_to_date(
    make_database: Callable[..., str],
):
    url = make_database("cli")

    done = subprocess.run(
        [sys.executable, "-m", "services.programs.migrate"],
        env=environment(DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("programs schema of postgresql://")
    assert "course_progress" in tables(url)


def test_migrate_command_without_database_url_names_it():
    done = subprocess.run(
        [sys.executable, "-m", "services.programs.migrate"],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: DATABASE_URL is not set; the programs service needs it"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_entry_point_serves_and_logs_json(tmp_path: Path, settings: Settings):
    port = free_port()
    env = environment(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        USERS_URLS=",".join(settings.users_urls),
        LEARNING_URLS=",".join(settings.learning_urls),
    )
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "services.programs.main:app",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            ready = eventually(
                lambda: http.get("/readyz", headers={"X-Request-ID": "programs-1"}),
                until=lambda response: (
                    response.status_code == 200 or server.poll() is not None
                ),
                what=f"the programs server to answer /readyz; log: {log}",
                timeout_s=WAIT_S * 2,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert ready.status_code == 200, log.read_text()[-2000:]
    lines = log.read_text().splitlines()
    assert any(
        '"request_id": "programs-1"' in line and '"service": "programs"' in line
        for line in lines
    ), lines
