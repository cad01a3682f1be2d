"""The service as a whole: probes, request logs, errors, and starting up."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from learning_testkit import new_learner

from services.common import redis_client
from services.common.logs import REQUEST_LOGGER
from services.learning.app import create_app
from services.learning.errors import DatabaseError
from services.learning.migrate import upgrade
from services.learning.settings import Settings

pytestmark = pytest.mark.anyio


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == REQUEST_LOGGER]


async def test_healthz_and_readyz_answer_200(client: httpx.AsyncClient):
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert (health.status_code, ready.status_code) == (200, 200)
    assert health.json() == {"status": "ok"}
    assert ready.json() == {"status": "ready"}


async def test_readyz_is_503_when_redis_does_not_answer(serve: Any, settings: Settings):
    # Nothing listens on port 9 of loopback (the discard service is not run).
    cut_off = dataclasses.replace(settings, redis_url="redis://127.0.0.1:9/0")

    async with serve(cut_off) as http:
        response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("Redis does not answer: ")


async def test_redis_client_gives_up_on_a_silent_redis(settings: Settings):
    app = create_app(settings)

    async with app.router.lifespan_context(app):
        options = app.state.runtime.redis.connection_pool.connection_kwargs

    assert options["socket_timeout"] == redis_client.SOCKET_TIMEOUT_S
    assert options["socket_connect_timeout"] == redis_client.CONNECT_TIMEOUT_S


async def test_readyz_is_503_when_the_database_is_gone(
    serve: Any,
    settings: Settings,
    new_database: Callable[[str], str],
    server_dsn: str,
):
    # Both run an event loop of their own: in a thread, off this one.
    url = await anyio.to_thread.run_sync(new_database, "ready")
    await anyio.to_thread.run_sync(upgrade, url)

    async with serve(dataclasses.replace(settings, database_url=url)) as http:
        before = await http.get("/readyz")
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
        after = await http.get("/readyz")

    assert before.status_code == 200
    assert after.status_code == 503
    assert after.json()["detail"].startswith("the database does not answer: ")


async def test_each_request_is_logged_once_with_its_route_and_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    course_id = uuid.uuid4()

    response = await client.get(
        f"/api/v1/courses/{course_id}",
        headers={**new_learner(), "X-Request-ID": "learning-req-1"},
    )

    assert response.status_code == 404
    assert response.headers["x-request-id"] == "learning-req-1"
    (line,) = request_lines(caplog)
    assert line.getMessage() == "GET /api/v1/courses/{course_id} 404"
    assert line.request_id == "learning-req-1"  # type: ignore[attr-defined]


async def test_certificate_codes_stay_out_of_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    code = "secret-code-" + uuid.uuid4().hex

    await client.get(f"/api/v1/certificates/{code}/verify")

    service_records = [r for r in caplog.records if r.name != "httpx"]  # the test's
    assert service_records
    for record in service_records:
        assert code not in record.getMessage()
        assert code not in str(vars(record))


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient):
    response = await client.get("/api/v1/lessons")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "there is no route /api/v1/lessons"


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient):
    response = await client.delete("/api/v1/courses", headers=new_learner())

    assert response.status_code == 405
    assert response.json()["detail"] == "/api/v1/courses does not answer DELETE"


async def test_malformed_json_body_is_a_422_problem(client: httpx.AsyncClient):
    response = await client.post(
        "/api/v1/courses",
        content=b"{not json",
        headers={**new_learner(), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


async def test_startup_with_unreachable_database_names_it_without_password(
    settings: Settings,
):
    url = f"postgresql://nobody:hunter2@127.0.0.1:9/{uuid.uuid4().hex}"
    app = create_app(dataclasses.replace(settings, database_url=url))

    with pytest.raises(
        DatabaseError, match="cannot connect to DATABASE_URL="
    ) as raised:
        async with app.router.lifespan_context(app):
            pass

    assert "nobody:***@127.0.0.1:9" in str(raised.value)
    assert "hunter2" not in str(raised.value)


async def test_openapi_lists_every_public_route(client: httpx.AsyncClient):
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert set(paths) == {
        "/api/v1/courses",
        "/api/v2/courses",
        "/api/v1/courses/{course_id}",
        "/api/v1/courses/{course_id}/enrollments",
        "/api/v1/enrollments/me",
        "/api/v1/enrollments/{enrollment_id}/progress",
        "/api/v1/enrollments/{enrollment_id}/complete",
        "/api/v1/certificates/me",
        "/api/v1/certificates/{code}/verify",
        "/healthz",
        "/readyz",
    }
