"""The gateway as a plain ASGI application.

No framework sits on the request path: a request is matched against the
route table, its token checked, and it is forwarded, with nothing in
between that the benchmark (load/benchmarks/gateway_proxy.py) does not pay
for. Every answer carries ``X-Request-ID`` and gets one log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from services.common.logs import log_request
from services.common.problems import PROBLEM_JSON, problem
from services.gateway import proxy, readiness
from services.gateway.errors import (
    BodyTooLarge,
    ConfigError,
    Forbidden,
    RequestRejected,
    TokenRejected,
    Unauthenticated,
    Unavailable,
)
from services.gateway.headers import RequestHeaders, request_id, split_request_headers
from services.gateway.keys import JwksCache, JwksUnavailable
from services.gateway.proxy import Response
from services.gateway.routes import Route, RouteTable, load_routes
from services.gateway.settings import Settings
from services.gateway.tokens import Identity, TokenVerifier, bearer_token
from services.gateway.upstreams import build_upstreams

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger(__name__)

REALM = 'Bearer realm="campus"'
_JSON = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class Gateway:
    """The ASGI application; ``settings`` say where everything is."""

    def __init__(self, settings: Settings, routes: RouteTable | None = None) -> None:
        self.settings = settings
        self.routes = routes or load_routes(settings.routes_path)
        self.upstreams = build_upstreams(
            self.routes.services,
            settings.upstreams,
            cooldown_s=settings.replica_cooldown_s,
        )
        self.jwks = JwksCache(
            self._fetch_jwks,
            source=settings.jwks_url,
            min_refetch_s=settings.jwks_min_refetch_s,
        )
        self.verifier = TokenVerifier(
            self.jwks,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway_s=settings.leeway_s,
            cache_size=settings.token_cache_size,
        )
        self._session: aiohttp.ClientSession | None = None
        self._redis: aioredis.Redis | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets are not proxied
            await send({"type": "websocket.close", "code": 1003})

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the gateway has not started: run it under lifespan")
        return self._session

    async def startup(self) -> None:
        settings = self.settings
        try:
            self._redis = aioredis.Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.readiness_timeout_s,
                socket_connect_timeout=settings.readiness_timeout_s,
            )
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL is not a Redis URL: {exc}") from exc
        self._session = proxy.open_session(
            timeout_s=settings.upstream_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        await self.jwks.refresh()
        self._refresher = asyncio.create_task(
            self.jwks.refresh_forever(settings.jwks_refresh_s)
        )
        logger.info(
            "gateway started: %d routes, services %s",
            len(self.routes.routes),
            ", ".join(self.upstreams),
        )

    async def shutdown(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
        if self._session is not None:
            await self._session.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = split_request_headers(scope["headers"])
        exchange = _Exchange(request_id(incoming.request_id), scope["method"])
        try:
            response = await self._answer(scope, receive, incoming, exchange)
        except RequestRejected as exc:
            exchange.upstream = exc.upstream
            response = problem_response(exc.status, str(exc), exc.headers)
        except ClientGone:
            exchange.log(499)
            return
        except Exception:
            logger.exception("request %s failed in the gateway", exchange.rid)
            response = problem_response(
                500, f"the gateway failed on this request; its id is {exchange.rid}", ()
            )
        response.headers.append((b"x-request-id", exchange.rid.encode("latin-1")))
        response.headers.append((b"content-length", str(len(response.body)).encode()))
        # Logged before the answer leaves, so whoever holds the answer can
        # already find its line by request id.
        exchange.log(response.status)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response.headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        incoming: RequestHeaders,
        exchange: _Exchange,
    ) -> Response:
        path: str = scope["path"]
        if path in ("/healthz", "/readyz") and exchange.method in ("GET", "HEAD"):
            exchange.template = path
            return await self._own(path)
        target = (scope.get("raw_path") or path.encode()).decode("latin-1")
        route = self.routes.match(exchange.method, target).route
        exchange.route, exchange.template = route, route.template
        exchange.identity = await self._authenticate(route, incoming.authorization)
        body = await _read_body(receive, self.settings.max_body_bytes)
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = _upstream_headers(scope, incoming, exchange.rid, exchange.identity)
        response, exchange.upstream = await proxy.forward(
            self.session,
            self.upstreams[route.service],
            exchange.method,
            target,
            headers,
            body,
        )
        response.headers.extend(route.response_headers)
        return response

    async def _authenticate(
        self, route: Route, authorization: str | None
    ) -> Identity | None:
        if route.role == "public":
            return None
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated(
                "this route needs an access token: send Authorization: Bearer <token>",
                headers=(("www-authenticate", REALM),),
            )
        try:
            identity = await self.verifier.verify(token)
        except TokenRejected as exc:
            raise Unauthenticated(
                f"the access token was rejected: {exc}",
                headers=(("www-authenticate", f'{REALM}, error="invalid_token"'),),
            ) from exc
        if route.role == "admin" and "admin" not in identity.roles:
            raise Forbidden(
                f"{route.template} needs the admin role; the token has roles "
                f"{list(identity.roles)}",
                headers=(("www-authenticate", f'{REALM}, error="insufficient_scope"'),),
            )
        return identity

    async def _own(self, path: str) -> Response:
        if path == "/healthz":
            return Response(200, list(_JSON), b'{"status":"ok"}')
        if self._redis is None:
            raise Unavailable("the gateway is still starting")
        down = await readiness.down_parts(
            self._redis,
            self.session,
            self.upstreams,
            timeout_s=self.settings.readiness_timeout_s,
        )
        if not down:
            return Response(200, list(_JSON), b'{"status":"ready"}')
        detail = "not ready: " + "; ".join(f"{k}: {v}" for k, v in down.items())
        return problem_response(503, detail, (), down=sorted(down))

    async def _fetch_jwks(self) -> Any:
        url = self.settings.jwks_url
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=self.settings.jwks_timeout_s)
            ) as answer:
                if answer.status != 200:
                    raise JwksUnavailable(f"{url} answered {answer.status}")
                return await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JwksUnavailable(
                f"{url} could not be fetched: {type(exc).__name__}: {exc}"
            ) from exc


def problem_response(
    status: int, detail: str, headers: tuple[tuple[str, str], ...], **extra: Any
) -> Response:
    """A problem+json answer from the gateway itself."""
    body = json.dumps(problem(status, detail, **extra)).encode()
    raw = [(b"content-type", PROBLEM_JSON.encode())]
    raw.extend(
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
    )
    return Response(status, raw, body)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        if not message.get("more_body", False):
            return b"".join(chunks) + chunk if chunks else chunk
        chunks.append(chunk)


def _upstream_headers(
    scope: Scope, incoming: RequestHeaders, rid: str, identity: Identity | None
) -> list[tuple[str, str]]:
    headers = incoming.forward
    headers.append(("x-request-id", rid))
    client = scope.get("client")
    if client:
        headers.append(("x-forwarded-for", client[0]))
    headers.append(("x-forwarded-proto", scope.get("scheme", "http")))
    if incoming.host:
        headers.append(("x-forwarded-host", incoming.host))
    if identity is not None:
        headers.append(("x-user-id", identity.subject))
        headers.append(("x-user-roles", identity.roles_header))
    return headers


@dataclass
class _Exchange:
    """What the request's log line needs, filled in as the request goes."""

    rid: str
    method: str
    started: float = field(default_factory=time.perf_counter)
    template: str = "(unmatched)"
    route: Route | None = None
    identity: Identity | None = None
    upstream: str | None = None

    def log(self, status: int) -> None:
        log_request(
            self.rid,
            self.method,
            self.template,
            status,
            self.started,
            upstream_service=self.route.service if self.route else None,
            upstream=self.upstream,
            user_id=self.identity.subject if self.identity else None,
        )
