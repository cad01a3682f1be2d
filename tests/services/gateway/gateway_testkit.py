"""Real servers on loopback, keys and fixtures for the gateway's tests.

``serving`` runs any ASGI app under uvicorn in a thread, on a socket bound
to a free port before the server starts (so there is no race for the port).
``EchoApp`` is the upstream: it answers with what it received, and can
publish a JWKS, hang, or report itself unhealthy.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec

from services.gateway.app import Gateway
from services.gateway.routes import parse_routes
from services.gateway.settings import Settings

START_TIMEOUT_S = 10.0
ISSUER = "campus-users"
AUDIENCE = "campus-api"
# Nothing listens here: connecting to it is refused at once.
CLOSED_REDIS = "redis://127.0.0.1:9/0"

TEST_ROUTES: dict[str, Any] = {
    "routes": [
        {"path": "/.well-known/jwks.json", "methods": ["GET"], "service": "users",
         "role": "public"},
    ],
    "versions": {
        "v1": {
            "routes": [
                {"path": "/open", "methods": ["GET", "POST"], "service": "users",
                 "role": "public"},
                {"path": "/hang", "methods": ["GET"], "service": "users",
                 "role": "public"},
                {"path": "/users/me", "methods": ["GET"], "service": "users",
                 "role": "user"},
                {"path": "/users/{id}", "methods": ["PATCH"], "service": "users",
                 "role": "admin"},
                {"path": "/users/{id}/competencies", "methods": ["GET"],
                 "service": "competency", "role": "user"},
            ]
        }
    },
}  # fmt: skip


@contextmanager
def serving(app: Any, *, lifespan: Literal["on", "off"] = "off") -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan=lifespan, log_level="warning", access_log=False, loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(START_TIMEOUT_S)
            sock.close()
            raise RuntimeError(
                f"{app!r} did not start on port {port} within {START_TIMEOUT_S}s"
            )
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        # An upstream may hold a hanging request; a gateway must run its
        # lifespan shutdown, which a forced exit would skip.
        server.force_exit = lifespan == "off"
        thread.join(START_TIMEOUT_S)
        sock.close()


@contextmanager
def hanging_up() -> Iterator[str]:
    """A server that accepts connections and closes them without an answer."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(START_TIMEOUT_S)
        listener.close()


def closed_port_url() -> str:
    """The URL of a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class EchoApp:
    """An upstream that answers every request with what it received, as JSON."""

    name: str
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    healthy: bool = True
    jwks_status: int = 200
    jwks_fetches: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        status, answer = 200, b""
        if path == "/healthz":
            status = 200 if self.healthy else 503
        elif path == "/.well-known/jwks.json":
            self.jwks_fetches += 1
            status, answer = self.jwks_status, json.dumps(self.jwks).encode()
        elif path.endswith("/hang"):
            await asyncio.sleep(60)
        else:
            seen = {
                "server": self.name,
                "method": scope["method"],
                "path": path,
                "raw_path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "body": body.decode(),
            }
            self.received.append(seen)
            answer = json.dumps(seen).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"set-cookie", b"session=from-" + self.name.encode()),
                    (b"x-upstream", self.name.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def header_values(seen: dict[str, Any], name: str) -> list[str]:
    """Every value of header ``name`` (lower case) the echo app received."""
    return [value for key, value in seen["headers"] if key == name]


@dataclass
class SigningKey:
    """An ES256 key pair with a kid; signs tokens with any claims or header."""

    kid: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def jwk(self) -> dict[str, Any]:
        public = jwt.algorithms.ECAlgorithm.to_jwk(
            self.private.public_key(), as_dict=True
        )
        return {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def sign(
        self,
        *,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "sub": "user-1",
            "roles": ["learner"],
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": f"jti-{time.monotonic_ns()}",
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload,
            self.private,
            algorithm="ES256",
            headers={"kid": self.kid, **(header or {})},
        )


@pytest.fixture
def signing_key() -> SigningKey:
    return SigningKey("key-1")


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    """An exit stack that stops every server a test started, in reverse order."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def users(servers: ExitStack, signing_key: SigningKey) -> tuple[EchoApp, str]:
    """An echo upstream named 'users' that also publishes ``signing_key``."""
    app = EchoApp("users", jwks={"keys": [signing_key.jwk()]})
    return app, servers.enter_context(serving(app))


GatewayFactory = Callable[..., httpx.Client]


@pytest.fixture
def gateway(
    servers: ExitStack, users: tuple[EchoApp, str], tmp_path: Path
) -> GatewayFactory:
    """Start a gateway in front of the ``users`` echo app; returns a client of it.

    Keyword arguments override Settings fields (``upstreams`` included).
    """

    def start(**overrides: Any) -> httpx.Client:
        url = users[1]
        fields: dict[str, Any] = {
            "routes_path": tmp_path / "unused.toml",
            "upstreams": {"users": (url,), "competency": (url,)},
            "jwks_url": f"{url}/.well-known/jwks.json",
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "redis_url": CLOSED_REDIS,
            "upstream_timeout_s": 5.0,
        }
        fields.update(overrides)
        app = Gateway(Settings(**fields), routes=parse_routes(TEST_ROUTES))
        base = servers.enter_context(serving(app, lifespan="on"))
        return servers.enter_context(httpx.Client(base_url=base, timeout=10.0))

    return start
