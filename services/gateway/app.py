"""The gateway as a plain ASGI application.

No framework sits on the request path: a request is matched against the
route table, its token checked, its rate limits decided, and it is
forwarded, with nothing in between that the benchmark
(load/benchmarks/gateway_proxy.py) does not pay for. Every answer carries
``X-Request-ID`` and gets one log line, whose ``ratelimit`` field says where
its rate-limit decision was made (``redis``, ``local``, or ``closed`` when
none could be); every answer on a rate-limited route carries
``RateLimit-Policy``, and ``RateLimit`` once a decision was made.

Abuse protection, in the order a request meets it: at most
GATEWAY_MAX_IN_FLIGHT requests at once per process (more get a fast 503,
nothing queues); a ``Content-Length`` over the route's body limit is a 413
before anything else is done; rate limits (429); the body must arrive within
GATEWAY_BODY_TIMEOUT_S (408) and stay within the limit (413). The head of
a request has its own deadline, in the HTTP protocol (``server.py``).
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
from services.gateway.bodies import ClientGone, check_declared_length, read_body
from services.gateway.client_ip import ClientAddresses
from services.gateway.errors import (
    ConfigError,
    Forbidden,
    RequestRejected,
    RequestTimeout,
    TokenRejected,
    Unauthenticated,
    Unavailable,
)
from services.gateway.headers import RequestHeaders, request_id, split_request_headers
from services.gateway.keys import JwksCache, JwksSources, jwks_urls
from services.gateway.metrics import Counter, Registry
from services.gateway.proxy import Response
from services.gateway.ratelimit import (
    Caller,
    Decision,
    LimiterSettings,
    RateLimiter,
    rejection,
)
from services.gateway.redis_wire import RedisAddress, RedisWire
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
_METRICS = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
# Answered by the gateway itself, before the route table.
OWN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


class Gateway:
    """The ASGI application; ``settings`` say where everything is."""

    def __init__(self, settings: Settings, routes: RouteTable | None = None) -> None:
        self.settings = settings
        self.routes = routes or load_routes(
            settings.routes_path, settings.policy_overrides
        )
        self.metrics = Registry()
        self.clients = ClientAddresses(settings.trusted_proxies)
        self.limiter = RateLimiter(
            None,
            LimiterSettings(
                timeout_s=settings.redis_timeout_s,
                breaker_failures=settings.breaker_failures,
                breaker_cooldown_s=settings.breaker_cooldown_s,
                processes=settings.processes,
                key_secret=settings.limit_key_secret,
            ),
            self.metrics,
        )
        self._in_flight = 0
        self._shed = self.metrics.counter(
            "gateway_requests_shed_total",
            "requests answered 503 at once because too many were in flight",
        )
        self._answered: dict[tuple[str, str, int], Counter] = {}
        self._body_timeouts = self.metrics.counter(
            "gateway_body_timeouts_total",
            "requests answered 408 because their body came too slowly",
        )
        self.upstreams = build_upstreams(
            self.routes.services,
            settings.upstreams,
            cooldown_s=settings.replica_cooldown_s,
        )
        sources = JwksSources(
            jwks_urls(settings.jwks_urls, self.routes, settings.upstreams),
            lambda: self.session,
            timeout_s=settings.jwks_timeout_s,
        )
        self.jwks = JwksCache(
            sources,
            source=str(sources),
            min_refetch_s=settings.jwks_min_refetch_s,
            wait_s=settings.jwks_timeout_s,
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
        self.limiter.wire = RedisWire(RedisAddress.from_url(settings.redis_url))
        await self.limiter.start()
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
        if self.limiter.wire is not None:
            self.limiter.wire.close()
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
        if self._in_flight >= self.settings.max_in_flight and scope["path"] != (
            "/healthz"
        ):
            self._shed.inc()
            response = problem_response(
                503,
                f"the gateway is handling its limit of {self.settings.max_in_flight} "
                "requests at once; retry in 1s",
                (("retry-after", "1"),),
            )
        else:
            self._in_flight += 1
            try:
                answered = await self._respond(scope, receive, incoming, exchange)
            finally:
                self._in_flight -= 1
            if answered is None:
                exchange.log(499)
                self._count(exchange, 499)
                return
            response = answered
        route = exchange.route
        if route is not None and route.limits.policy_header:
            response.headers.append((b"ratelimit-policy", route.limits.policy_header))
            if exchange.decision is not None and exchange.decision.header:
                response.headers.append((b"ratelimit", exchange.decision.header))
        response.headers.append((b"x-request-id", exchange.rid.encode("latin-1")))
        response.headers.append((b"content-length", str(len(response.body)).encode()))
        # Logged before the answer leaves, so whoever holds the answer can
        # already find its line by request id.
        exchange.log(response.status)
        self._count(exchange, response.status)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response.headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    def _count(self, exchange: _Exchange, status: int) -> None:
        # Clients choose methods; only the standard ones become label values.
        method = exchange.method if exchange.method in _METHODS else "OTHER"
        key = (exchange.template, method, status)
        counter = self._answered.get(key)
        if counter is None:
            counter = self._answered[key] = self.metrics.counter(
                "gateway_requests_total",
                "requests answered, by route template, method and status",
                route=exchange.template,
                method=method,
                status=str(status),
            )
        counter.inc()

    async def _respond(
        self,
        scope: Scope,
        receive: Receive,
        incoming: RequestHeaders,
        exchange: _Exchange,
    ) -> Response | None:
        """The answer to a request; None when the client left before its body."""
        try:
            return await self._answer(scope, receive, incoming, exchange)
        except RequestRejected as exc:
            exchange.upstream = exc.upstream
            return problem_response(exc.status, str(exc), exc.headers, **exc.extra)
        except ClientGone:
            return None
        except Exception:
            logger.exception("request %s failed in the gateway", exchange.rid)
            return problem_response(
                500, f"the gateway failed on this request; its id is {exchange.rid}", ()
            )

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        incoming: RequestHeaders,
        exchange: _Exchange,
    ) -> Response:
        path: str = scope["path"]
        if path in OWN_PATHS and exchange.method in ("GET", "HEAD"):
            exchange.template = path
            return await self._own(path)
        target = (scope.get("raw_path") or path.encode()).decode("latin-1")
        route = self.routes.match(exchange.method, target).route
        exchange.route, exchange.template = route, route.template
        exchange.identity = await self._authenticate(route, incoming.authorization)
        max_body = route.max_body_bytes
        if max_body is None:
            max_body = self.settings.max_body_bytes
        check_declared_length(incoming.content_length, max_body)
        body: bytes | None = None
        decision: Decision | None = None
        limits = route.limits
        if limits.policies:
            fields = None
            if limits.body_fields:
                body = await self._read_body(receive, max_body)
                fields = self.limiter.caller_fields(body, limits.body_fields)
            client = scope.get("client")
            caller = Caller(
                self.clients.key(client[0] if client else None, incoming.forwarded_for),
                exchange.identity.subject if exchange.identity else None,
                fields,
            )
            try:
                decision = await self.limiter.decide(limits, caller)
            except Unavailable:
                exchange.ratelimit = "closed"
                raise
            if decision is not None:
                exchange.decision, exchange.ratelimit = decision, decision.source
            if decision is not None and not decision.allowed:
                raise rejection(decision, authenticated=exchange.identity is not None)
        if body is None:
            body = await self._read_body(receive, max_body)
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = self._upstream_headers(scope, incoming, exchange)
        try:
            response, exchange.upstream = await proxy.forward(
                self.session,
                self.upstreams[route.service],
                exchange.method,
                target,
                headers,
                body,
            )
        except Exception:
            if decision is not None:
                await self.limiter.settle(decision, 0)
            raise
        if decision is not None:
            await self.limiter.settle(decision, response.status)
        response.headers.extend(route.response_headers)
        return response

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        try:
            return await read_body(receive, limit, self.settings.body_timeout_s)
        except RequestTimeout:
            self._body_timeouts.inc()
            raise

    def _upstream_headers(
        self, scope: Scope, incoming: RequestHeaders, exchange: _Exchange
    ) -> list[tuple[str, str]]:
        headers = incoming.forward
        headers.append(("x-request-id", exchange.rid))
        client = scope.get("client")
        if client:
            chain = client[0]
            if incoming.forwarded_for and self.clients.trusts(client[0]):
                sent = b", ".join(incoming.forwarded_for).decode("latin-1")
                chain = f"{sent}, {chain}"
            headers.append(("x-forwarded-for", chain))
        headers.append(("x-forwarded-proto", scope.get("scheme", "http")))
        if incoming.host:
            headers.append(("x-forwarded-host", incoming.host))
        identity = exchange.identity
        if identity is not None:
            headers.append(("x-user-id", identity.subject))
            headers.append(("x-user-roles", identity.roles_header))
        return headers

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
        if path == "/metrics":
            return Response(200, list(_METRICS), self.metrics.render().encode())
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
    decision: Decision | None = None
    # Where the rate-limit decision was made: redis, local, or closed (none
    # could be made and the route fails closed); None when none was needed.
    ratelimit: str | None = None

    def log(self, status: int) -> None:
        fields = {} if self.ratelimit is None else {"ratelimit": self.ratelimit}
        log_request(
            self.rid,
            self.method,
            self.template,
            status,
            self.started,
            upstream_service=self.route.service if self.route else None,
            upstream=self.upstream,
            user_id=self.identity.subject if self.identity else None,
            **fields,
        )
