"""Whether the gateway can do its job: Redis answers, and every service has a replica.

Each check returns None when the part is up, else a short reason. Reasons
name the part, never its address: /readyz is public.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.gateway.upstreams import Upstream


async def down_parts(
    redis: aioredis.Redis,
    session: aiohttp.ClientSession,
    upstreams: Mapping[str, Upstream],
    *,
    timeout_s: float,
) -> dict[str, str]:
    """What is down, by name (``redis`` or a service), with the reason."""
    names = ["redis", *upstreams]
    checks = [_redis_down(redis, timeout_s)] + [
        _service_down(session, upstream, timeout_s) for upstream in upstreams.values()
    ]
    reasons = await asyncio.gather(*checks)
    return {name: reason for name, reason in zip(names, reasons, strict=True) if reason}


async def _redis_down(redis: aioredis.Redis, timeout_s: float) -> str | None:
    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
    except TimeoutError:
        return f"PING got no answer within {timeout_s}s"
    except (RedisError, OSError) as exc:
        return f"PING failed: {type(exc).__name__}"
    return None


async def _service_down(
    session: aiohttp.ClientSession, upstream: Upstream, timeout_s: float
) -> str | None:
    async def healthy(url: str) -> bool:
        try:
            async with session.get(
                f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    answers = await asyncio.gather(*(healthy(r.url) for r in upstream.replicas))
    if any(answers):
        return None
    return f"none of {len(answers)} replica(s) answered GET /healthz with 200"
