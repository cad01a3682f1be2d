"""Waiting for a consumer group to finish with a stream, for the event tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis


async def until(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"waited {timeout_s:g}s for {what}"
        await asyncio.sleep(0.02)


async def settle(
    redis: aioredis.Redis,
    stream: str,
    what: str,
    *,
    copies: int | None = None,
    timeout_s: float = 15,
) -> None:
    """Wait until the stream holds ``copies`` messages (any, when None) and its
    group has read and acknowledged every one: the effects are final then."""
    seen: dict[str, object] = {}

    async def settled() -> bool:
        seen["length"] = await redis.xlen(stream)
        if not seen["length"] or copies not in (None, seen["length"]):
            return False
        [(seen["last"], _)] = await redis.xrevrange(stream, count=1)
        groups = await redis.xinfo_groups(stream)
        if not groups:
            return False
        seen["delivered"] = groups[0]["last-delivered-id"]
        seen["pending"] = groups[0]["pending"]
        return seen["delivered"] == seen["last"] and seen["pending"] == 0

    try:
        await until(settled, what, timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {seen}") from None
