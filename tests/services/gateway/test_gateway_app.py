"""The ASGI application on its own: lifespan, protocols, and failures of its own."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from gateway_testkit import (
    AUDIENCE,
    CLOSED_REDIS,
    ISSUER,
    TEST_ROUTES,
    EchoApp,
    serving,
)

from services.gateway.app import Gateway
from services.gateway.routes import parse_routes
from services.gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 15.0


def unstarted_gateway(**overrides: Any) -> Gateway:
    fields: dict[str, Any] = {
        "routes_path": Path("unused.toml"),
        "upstreams": {"users": ("http://127.0.0.1:9",), "competency": ("http://x:1",)},
        "jwks_urls": ("http://127.0.0.1:9/jwks",),
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "redis_url": CLOSED_REDIS,
    }
    fields.update(overrides)
    return Gateway(Settings(**fields), routes=parse_routes(TEST_ROUTES))


def call(app: Gateway, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one ASGI call; returns the messages the app sent."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"x-request-id", b"req-unit")],
    }


def test_app_answers_500_problem_when_used_without_lifespan() -> None:
    sent = call(unstarted_gateway(), http_scope("/api/v1/open"))

    start, body = sent
    assert start["status"] == 500
    assert (b"x-request-id", b"req-unit") in start["headers"]
    assert json.loads(body["body"])["detail"] == (
        "the gateway failed on this request; its id is req-unit"
    )


def test_app_readyz_before_startup_is_503() -> None:
    sent = call(unstarted_gateway(), http_scope("/readyz"))

    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["detail"] == "the gateway is still starting"


def test_app_closes_websockets() -> None:
    sent = call(unstarted_gateway(), {"type": "websocket", "path": "/ws"})

    assert sent == [{"type": "websocket.close", "code": 1003}]


def test_app_logs_client_that_leaves_before_its_body() -> None:
    app = unstarted_gateway()
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(http_scope("/api/v1/open", "POST"), receive, send))

    assert sent == []


def test_app_startup_fails_on_bad_redis_url() -> None:
    app = unstarted_gateway(redis_url="memcached://127.0.0.1:1")
    sent: list[dict[str, Any]] = []
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(app({"type": "lifespan"}, receive, send))

    assert sent[0]["type"] == "lifespan.startup.failed"
    assert sent[0]["message"].startswith("REDIS_URL is not a Redis URL: ")


def test_main_serves_under_uvicorn_with_json_logs(tmp_path: Path) -> None:
    with ExitStack() as servers:
        users = servers.enter_context(serving(EchoApp("users")))
        port, log = free_port(), tmp_path / "gateway.log"
        env = {
            **os.environ,
            "UPSTREAM_USERS": users,
            "UPSTREAM_LEARNING": users,
            "UPSTREAM_PROGRAMS": users,
            "UPSTREAM_NOTIFICATIONS": users,
            "JWKS_URL": f"{users}/.well-known/jwks.json",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "REDIS_URL": CLOSED_REDIS,
        }
        argv = [sys.executable, "-m", "uvicorn", "services.gateway.main:app",
                "--port", str(port), "--log-level", "warning"]  # fmt: skip
        with log.open("wb") as output:
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=output)
            try:
                answer = wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
            finally:
                process.terminate()
                process.wait(START_TIMEOUT_S)

    lines = [json.loads(line) for line in log.read_text().splitlines() if line]
    requests = [line for line in lines if line["logger"] == "campus.request"]
    assert answer.status_code == 200
    assert requests[0]["service"] == "gateway"
    assert requests[0]["route"] == "/healthz"
    assert requests[0]["request_id"] == answer.headers["x-request-id"]


def test_main_refuses_to_start_without_settings() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JWKS_URL",)}

    result = subprocess.run(
        [sys.executable, "-c", "import services.gateway.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    assert "environment variable JWKS_URL is required and is not set" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for_health(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: object = "no attempt"
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return httpx.get(url, timeout=1.0)
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(
        f"{url} did not answer within {START_TIMEOUT_S}s "
        f"(exit code {process.poll()}, last error {last!r})"
    )
