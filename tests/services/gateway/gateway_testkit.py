"""Real servers on loopback, keys and fixtures for the gateway's tests.

``serving`` runs any ASGI app under uvicorn in a thread, on a socket bound
to a free port before the server starts (so there is no race for the port).
``EchoApp`` is the upstream: it answers with what it received, and can
publish a JWKS, hang, or report itself unhealthy.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
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

from harness.backends.local.binaries import redis_server
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


# Low limits on routes of their own, for the rate-limit tests.
LIMITED_ROUTES: dict[str, Any] = {
    "policies": [
        {"name": "burst", "limit": 3, "window_s": 1},
        {"name": "sustained", "limit": 5, "window_s": 60},
        {"name": "by-ip", "limit": 4, "window_s": 60, "key": "ip"},
        {"name": "fail-ip", "limit": 3, "window_s": 60, "key": "ip",
         "counts": "failures"},
        {"name": "fail-account", "limit": 2, "window_s": 60, "key": "body.email",
         "counts": "failures"},
    ],
    "routes": [
        {"path": "/.well-known/jwks.json", "methods": ["GET"], "service": "users",
         "role": "public"},
    ],
    "versions": {
        "v1": {
            "limits": ["burst", "sustained"],
            "routes": [
                {"path": "/users/me", "methods": ["GET", "POST"], "service": "users",
                 "role": "user"},
                {"path": "/open", "methods": ["GET", "POST"], "service": "users",
                 "role": "public", "limits": ["by-ip"], "max_body_bytes": 16},
                {"path": "/closed", "methods": ["GET"], "service": "users",
                 "role": "public", "limits": ["by-ip"], "limits_fail": "closed"},
                {"path": "/auth/login", "methods": ["POST"], "service": "users",
                 "role": "public", "limits": ["fail-ip", "fail-account"]},
                {"path": "/free", "methods": ["GET", "POST"], "service": "users",
                 "role": "public", "limits": []},
                {"path": "/hang", "methods": ["GET"], "service": "users",
                 "role": "public", "limits": []},
            ],
        }
    },
}  # fmt: skip


@dataclass
class RedisServer:
    """A redis-server of a test's own, on a fixed port so it can come back."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if not self.port:
            self.port = free_port()
        argv = [str(redis_server()), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                "--protected-mode", "no"]  # fmt: skip
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(
            f"redis-server did not answer PING on port {self.port} within "
            f"{START_TIMEOUT_S}s (exit code {self.process.poll()})"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(START_TIMEOUT_S)
        self.process = None

    def pause(self) -> None:
        """Stop the process without closing its sockets: it answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (stop it, pause it, start it again)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serving(
    app: Any, *, lifespan: Literal["on", "off"] = "off", **options: Any
) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL.

    ``options`` go to ``uvicorn.Config`` (e.g. ``http=`` a protocol class).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # As the harness runs it: uvicorn must not rewrite the client address from
    # X-Forwarded-For (its default for 127.0.0.1); the gateway decides that.
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        loop="asyncio",
        proxy_headers=False,
        **options,
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
        elif path.endswith("/auth/login"):
            # The users service's answer, reduced: the password decides.
            password = json.loads(body or b"{}").get("password")
            status = 200 if password == "right" else 401
            self.received.append({"path": path, "body": body.decode()})
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

    Keyword arguments override Settings fields (``upstreams`` included);
    ``routes`` replaces TEST_ROUTES. ``gateway.apps`` lists the started apps.
    """
    started: list[Gateway] = []

    def start(routes: dict[str, Any] | None = None, **overrides: Any) -> httpx.Client:
        url = users[1]
        fields: dict[str, Any] = {
            "routes_path": tmp_path / "unused.toml",
            "upstreams": {"users": (url,), "competency": (url,)},
            "jwks_urls": (f"{url}/.well-known/jwks.json",),
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "redis_url": CLOSED_REDIS,
            "upstream_timeout_s": 5.0,
            # Tests that count admissions need every decision made in Redis,
            # which shares two loaded cores with them; the 5 ms default would
            # send some to the in-process fallback. Fallback tests set theirs.
            "redis_timeout_s": 1.0,
        }
        fields.update(overrides)
        app = Gateway(Settings(**fields), routes=parse_routes(routes or TEST_ROUTES))
        base = servers.enter_context(serving(app, lifespan="on"))
        client = servers.enter_context(httpx.Client(base_url=base, timeout=10.0))
        started.append(app)
        return client

    start.apps = started  # type: ignore[attr-defined]

    return start
