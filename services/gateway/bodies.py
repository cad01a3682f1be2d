"""Reading a request body within its size limit and its deadline.

A ``Content-Length`` over the limit is refused before anything is read; a
body that grows over it while it arrives is refused as soon as it does
(413). A body that has not fully arrived ``timeout_s`` after the gateway
started reading it is refused with 408: a client that trickles its body
holds a connection and a slot of the in-flight cap, and must not hold them
for long. Both answers close the connection, whose body was not read to the
end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from services.gateway.errors import BodyTooLarge, RequestTimeout

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

CLOSE = (("connection", "close"),)


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def check_declared_length(declared: bytes | None, limit: int) -> None:
    """413 at once for a Content-Length over ``limit``."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The whole body; BodyTooLarge, RequestTimeout or ClientGone if not."""
    # The deadline covers the first message too: a head that announces a
    # body and sends none must not hold its place for longer than a slow one.
    try:
        async with asyncio.timeout(timeout_s):
            return await _read(receive, limit)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:g}s", headers=CLOSE
        ) from None


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"the request body is larger than {limit} bytes", headers=CLOSE)
