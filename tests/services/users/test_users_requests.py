"""Request ids, the one log line per request, probes, and errors as problems."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from services.common.logs import REQUEST_LOGGER
from services.common.request_log import RequestLogMiddleware
from services.users.app import create_app
from services.users.migrate import upgrade
from services.users.settings import Settings

pytestmark = pytest.mark.anyio


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == REQUEST_LOGGER]


async def test_request_id_is_echoed_and_logged_with_the_route_template(
    client: httpx.AsyncClient,
    register: Any,
    identity: Any,
    caplog: pytest.LogCaptureFixture,
):
    user = await register()
    caplog.set_level(logging.INFO)

    response = await client.patch(
        f"/api/v1/users/{user['id']}",
        json={"roles": ["learner"]},
        headers={**identity(str(uuid.uuid4()), "admin"), "X-Request-ID": "req-1.a_b"},
    )

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-1.a_b"
    (line,) = request_lines(caplog)
    assert line.getMessage() == "PATCH /api/v1/users/{user_id} 200"
    assert line.request_id == "req-1.a_b"  # type: ignore[attr-defined]
    assert line.route == "/api/v1/users/{user_id}"  # type: ignore[attr-defined]
    assert line.status == 200  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("sent", ["has spaces", "x" * 129, "semi;colon", ""])
async def test_insane_request_id_is_replaced(
    client: httpx.AsyncClient, sent: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)

    response = await client.get("/healthz", headers={"X-Request-ID": sent})

    given = response.headers["x-request-id"]
    assert given != sent
    assert len(given) == 32
    assert int(given, 16) >= 0
    (line,) = request_lines(caplog)
    assert line.request_id == given  # type: ignore[attr-defined]


async def test_missing_request_id_is_generated(client: httpx.AsyncClient):
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_no_password_or_token_reaches_any_log_record(
    client: httpx.AsyncClient, identity: Any, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    email = f"secretive-{uuid.uuid4().hex[:8]}@example.org"
    password = "s3cret-Passw0rd-" + uuid.uuid4().hex

    registered = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "full_name": "Sec Retive"},
    )
    await client.post("/api/v1/auth/login", json={"email": email, "password": "bad-1"})
    pair = (
        await client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
    ).json()
    fresh = (
        await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
    ).json()
    await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": fresh["refresh_token"]},
        headers=identity(registered.json()["id"]),
    )

    secrets = [
        password,
        pair["access_token"],
        pair["refresh_token"],
        fresh["access_token"],
        fresh["refresh_token"],
    ]
    assert len(request_lines(caplog)) == 6
    for record in caplog.records:
        rendered = record.getMessage() + json.dumps(vars(record), default=str)
        leaked = [s[:8] for s in secrets if s in rendered]
        assert leaked == [], f"{record.name}: {record.getMessage()}"


async def test_reuse_warning_carries_the_request_id(
    client: httpx.AsyncClient,
    register: Any,
    login: Any,
    caplog: pytest.LogCaptureFixture,
):
    pair = await login(await register())
    body = {"refresh_token": pair["refresh_token"]}
    await client.post("/api/v1/auth/refresh", json=body)

    await client.post(
        "/api/v1/auth/refresh", json=body, headers={"X-Request-ID": "reuse-1"}
    )

    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.request_id == "reuse-1"  # type: ignore[attr-defined]
    assert "revoked its family" in warning.getMessage()


async def test_unknown_route_is_a_404_problem(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)

    response = await client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "there is no route /api/v1/nothing-here"
    (line,) = request_lines(caplog)
    assert line.route == "<unmatched>"  # type: ignore[attr-defined]


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient):
    response = await client.delete("/api/v1/users/me")

    assert response.status_code == 405
    assert response.json()["detail"] == "/api/v1/users/me does not answer DELETE"


async def test_healthz_and_readyz_answer_200(client: httpx.AsyncClient):
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert health.status_code == ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_readyz_is_503_when_the_database_is_gone(
    settings: Settings, make_database: Any, server_dsn: str
):
    # Both run an event loop of their own: off this one, in a thread.
    url = await anyio.to_thread.run_sync(make_database, "ready")
    await anyio.to_thread.run_sync(upgrade, url)
    app = create_app(dataclasses.replace(settings, database_url=url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://users"
        ) as client,
    ):
        assert (await client.get("/readyz")).status_code == 200
        name = url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()

        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("the database does not answer: ")


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the handler broke")


async def half_answering_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("the handler broke midway")


async def test_unhandled_error_is_a_500_problem_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    app = RequestLogMiddleware(failing_app)
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "boom-1"})

    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-1"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error happened; request id boom-1",
    }
    error = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert error.exc_info is not None
    assert error.request_id == "boom-1"  # type: ignore[attr-defined]
    (line,) = request_lines(caplog)
    assert line.status == 500  # type: ignore[attr-defined]


async def test_error_after_the_response_started_is_logged_and_raised(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    app = RequestLogMiddleware(half_answering_app)
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(RuntimeError, match="the handler broke midway"):
            await client.get("/half")

    (line,) = request_lines(caplog)
    assert line.status == 200  # type: ignore[attr-defined]
    assert any(r.levelno == logging.ERROR for r in caplog.records)


async def test_lifespan_passes_through_the_middleware():
    events: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        events.append(scope["type"])

    await RequestLogMiddleware(lifespan_app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]

    assert events == ["lifespan"]
