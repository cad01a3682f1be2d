"""The commands the harness runs: the migration, and the server entry point."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from learning_testkit import Directory

from harness.eventually import eventually
from services.learning.migrate import downgrade

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "USERS_URLS", "USERS_TIMEOUT_S")
EXIT_TIMEOUT_S = 30


def clean_env(**variables: str) -> dict[str, str]:
    """Our environment without the service's variables, plus ``variables``."""
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    return {**base, **variables}


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.learning.migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fetch(url: str, query: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(query))
        finally:
            await connection.close()

    return asyncio.run(run())


def test_migrate_creates_the_schema_and_runs_again_as_a_no_op(
    new_database: Callable[[str], str],
):
    url = new_database("migrate")

    first = migrate(clean_env(DATABASE_URL=url))
    second = migrate(clean_env(DATABASE_URL=url))

    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout.strip() == f"learning schema of {url} is up to date"
    tables = fetch(
        url,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'learning' ORDER BY table_name",
    )
    assert [t["table_name"] for t in tables] == [
        "alembic_version",
        "certificates",
        "courses",
        "enrollment_lessons",
        "enrollments",
        "lessons",
        "outbox",
        "processed_events",
    ]
    indexes = fetch(
        url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'learning'"
    )
    assert {
        "courses_created_at_id_idx",
        "courses_search_idx",
        "lessons_course_position_key",
        "enrollments_user_course_key",
        "enrollments_user_enrolled_at_idx",
        "enrollment_lessons_pkey",
        "certificates_code_key",
        "certificates_enrollment_key",
        "certificates_user_issued_at_idx",
        "outbox_unpublished",
    } <= {i["indexname"] for i in indexes}

    downgrade(url, "base")

    left = fetch(
        url,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'learning'",
    )
    assert [t["table_name"] for t in left] == ["alembic_version"]


def test_text_search_can_use_the_gin_index(test_database: str):
    async def plan() -> str:
        connection = await asyncpg.connect(test_database)
        try:
            async with connection.transaction():
                await connection.execute("SET LOCAL enable_seqscan = off")
                rows = await connection.fetch(
                    "EXPLAIN SELECT id FROM learning.courses "
                    "WHERE search @@ learning.search_query('pyth')"
                )
        finally:
            await connection.close()
        return "\n".join(row[0] for row in rows)

    assert "courses_search_idx" in asyncio.run(plan())


def test_migrate_without_database_url_names_it():
    done = migrate(clean_env())

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: DATABASE_URL is not set; the learning service needs it"
    )


def test_migrate_unreachable_database_fails_without_the_password():
    done = migrate(clean_env(DATABASE_URL="postgresql://lea:hunter2@127.0.0.1:9/x"))

    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: cannot upgrade the learning schema in "
            "postgresql://lea:***@127.0.0.1:9/x: "
        )
    )
    assert "hunter2" not in done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def server_log(tmp_path: Any) -> Any:
    return tmp_path / "learning.log"


def test_server_starts_from_its_environment_and_stops_on_sigterm(
    test_database: str, redis_url: str, users_service: Directory, server_log: Any
):
    port = free_port()
    env = clean_env(
        DATABASE_URL=test_database, REDIS_URL=redis_url, USERS_URLS=users_service.url
    )
    with server_log.open("w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "services.learning.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = eventually(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2),
            until=lambda response: response.status_code == 200,
            timeout_s=30,
            what=f"the learning service on port {port} to be ready",
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(EXIT_TIMEOUT_S)

    assert ready.json() == {"status": "ready"}
    # uvicorn shuts down gracefully, then re-raises the signal it was sent.
    assert server.returncode in (0, -signal.SIGTERM)
    lines = [
        json.loads(line)
        for line in server_log.read_text().splitlines()
        if line.startswith("{")  # the server's own lines are plain text
    ]
    messages = [line["msg"] for line in lines if line.get("service") == "learning"]
    assert any(
        m.startswith("learning service started; event workers running")
        for m in messages
    )
    assert "learning service stopped" in messages
    assert "GET /readyz 200" in messages
