"""The gateway's HTTP protocol: uvicorn's httptools protocol with a head deadline.

uvicorn waits for a request head as long as the client cares to take: a
client that sends its headers a byte at a time (slowloris) holds a
connection for ever, and enough of them hold every connection. Here the
head of each request must be complete within GATEWAY_HEADER_TIMEOUT_S of
its first byte (for the first request, of the connection being accepted);
otherwise the connection gets a 408 (if the client sent anything) and is
closed. Idle keep-alive connections are still uvicorn's business
(``--timeout-keep-alive``). Run with::

    uvicorn services.gateway.main:app --http services.gateway.server:GatewayHttpProtocol
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.common.problems import PROBLEM_JSON, problem
from services.gateway.metrics import Registry, ThrottledWarning
from services.gateway.settings import header_timeout_s

logger = logging.getLogger(__name__)

# One per process: the protocol has no reference to the application.
REGISTRY = Registry()
HEADER_TIMEOUTS = REGISTRY.counter(
    "gateway_header_timeouts_total",
    "connections closed because a request head did not arrive in time",
)
_warning = ThrottledWarning(logger, "connections closed for a slow request head")


class GatewayHttpProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete in time."""

    header_timeout_s = header_timeout_s()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        self._head_started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_started = True
            if self._head_timer is None:
                self._arm()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_started = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next bytes on this connection start another request's head.
        self._awaiting_head = True

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(
            self.header_timeout_s, self._head_timed_out
        )

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        HEADER_TIMEOUTS.inc()
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        _warning.note(f"the last from {peer}")
        if self._head_started:
            detail = (
                f"the request head did not arrive within {self.header_timeout_s:g}s"
            )
            body = json.dumps(problem(408, detail)).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\n"
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body
            )
        self.transport.close()
