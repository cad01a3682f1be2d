"""One log line per request, under the request id the response carries.

A pure ASGI middleware: it takes the client's ``X-Request-ID`` when it is
sane (at most 128 of ``[A-Za-z0-9._-]``) or makes one up, returns it on the
response, and logs the method, route template, status and duration. An
error no handler caught becomes a 500 problem here, so that it is logged
with the request id and answered with one too.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import log_request
from services.common.problems import PROBLEM_JSON, problem

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def request_context() -> dict[str, str]:
    """``extra`` for a log line written while answering a request."""
    return {"request_id": request_id_var.get()}


def sane_request_id(value: str | None) -> str:
    """``value`` when it is a sane request id, else a new one."""
    if value and _SANE_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """Wraps the app: request id in, request id out, one log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = sane_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "unhandled error in %s %s",
                scope["method"],
                _route(scope),
                extra={"request_id": request_id},
            )
            if response_started:
                raise  # too late for a problem: the server must cut the response
            await _send_internal_error(send_with_id, request_id)
        finally:
            log_request(request_id, scope["method"], _route(scope), status, started)
            request_id_var.reset(token)


def _route(scope: Scope) -> str:
    """The template of the route that answered, e.g. /api/v1/users/{user_id}."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = json.dumps(
        problem(500, f"an unexpected error happened; request id {request_id}")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
