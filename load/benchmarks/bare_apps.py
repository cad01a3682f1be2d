"""The apps the gateway benchmark runs beside the gateway, one process each.

``upstream``: answers every request with a small JSON body and publishes
the benchmark's signing key at /.well-known/jwks.json (BENCH_JWKS: a file).
The ``*_proxy`` apps forward GET requests to BENCH_UPSTREAM and nothing
else: they price an HTTP client or a framework on its own, to choose them
by measurement.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b'{"id":"2f1c","email":"bench@campus.test","roles":["learner"]}'
JSON = [(b"content-type", b"application/json")]


async def upstream(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = BODY
    if scope["path"] == "/.well-known/jwks.json":
        body = Path(os.environ["BENCH_JWKS"]).read_bytes()
    await send({"type": "http.response.start", "status": 200, "headers": JSON})
    await send({"type": "http.response.body", "body": body})


class _RawProxy:
    """A plain ASGI proxy around one client call; subclasses pick the client."""

    def __init__(self) -> None:
        self.base = os.environ.get("BENCH_UPSTREAM", "")

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.start, self.stop)
            return
        status, body = await self.fetch(self.base + scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": JSON})
        await send({"type": "http.response.body", "body": body})

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def fetch(self, url: str) -> tuple[int, bytes]:
        raise NotImplementedError


class _AiohttpProxy(_RawProxy):
    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=256)
        )

    async def stop(self) -> None:
        await self.session.close()

    async def fetch(self, url: str) -> tuple[int, bytes]:
        async with self.session.get(url) as answer:
            return answer.status, await answer.read()


class _HttpxProxy(_RawProxy):
    async def start(self) -> None:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.client = httpx.AsyncClient(limits=limits)

    async def stop(self) -> None:
        await self.client.aclose()

    async def fetch(self, url: str) -> tuple[int, bytes]:
        answer = await self.client.get(url)
        return answer.status_code, answer.content


aiohttp_proxy = _AiohttpProxy()
httpx_proxy = _HttpxProxy()


async def _starlette_forward(request: Request) -> Response:
    status, body = await aiohttp_proxy.fetch(aiohttp_proxy.base + request.url.path)
    return Response(body, status, media_type="application/json")


@contextlib.asynccontextmanager
async def _starlette_lifespan(app: Starlette) -> AsyncIterator[None]:
    await aiohttp_proxy.start()
    yield
    await aiohttp_proxy.stop()


starlette_proxy = Starlette(
    routes=[Route("/{path:path}", _starlette_forward)], lifespan=_starlette_lifespan
)


async def _lifespan(
    receive: Receive,
    send: Send,
    start: Callable[[], Awaitable[None]] | None = None,
    stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if start is not None:
                await start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if stop is not None:
                await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
