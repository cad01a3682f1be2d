"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from fastapi import APIRouter
from redis.exceptions import RedisError

from services.common.api import Problem
from services.notifications.runtime import Services

logger = logging.getLogger(__name__)

router = APIRouter()

READY_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: Services) -> dict[str, str]:
    """200 when Postgres and Redis answer, else 503 naming the one that does not."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await services.pool.fetchval("SELECT 1")
    except (
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        logger.warning("not ready: Postgres does not answer: %r", exc)
        raise Problem(503, f"the database does not answer: {exc!r}") from exc
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await services.redis.ping()
    except (OSError, TimeoutError, RedisError) as exc:
        logger.warning("not ready: Redis does not answer: %r", exc)
        raise Problem(503, f"Redis does not answer: {exc!r}") from exc
    return {"status": "ready"}
