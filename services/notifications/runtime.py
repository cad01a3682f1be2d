"""What a running service holds between requests, and how routes get at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request

from services.notifications.settings import Settings
from services.notifications.triggers import Triggers


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    triggers: Triggers


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)  # set by the lifespan before any request
    return runtime


Services = Annotated[Runtime, Depends(get_runtime)]
