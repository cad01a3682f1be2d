"""The users service as an ASGI application; ``services.users.main`` serves it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.common import redis_client
from services.common.api import install_handlers
from services.common.database import create_pool
from services.common.events import EventWorkers
from services.common.request_log import RequestLogMiddleware
from services.users import SCHEMA
from services.users.keys import KeyRing
from services.users.passwords import Passwords
from services.users.routes import auth, health, users
from services.users.runtime import Runtime
from services.users.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; without ``settings`` they are read from the environment
    when it starts, so that importing it needs no configuration."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or Settings.from_env()
        keys = KeyRing(current.keys_dir, current.keys_activation_s)
        keys.reload()
        signer = keys.signing_key.kid  # with no key, fail now and name the folder
        passwords = Passwords()
        pool = await create_pool(current.database_url)
        redis = redis_client.connect(current.redis_url)
        workers = EventWorkers(pool, redis, SCHEMA, stream=current.events_stream)
        workers.start()
        watcher = asyncio.create_task(keys.watch(current.keys_reload_s))
        app.state.runtime = Runtime(current, pool, keys, passwords)
        logger.info(
            "users service started; %s signs; keys in %s rescanned every %gs",
            signer,
            current.keys_dir,
            current.keys_reload_s,
        )
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await workers.stop()
            await redis.aclose()
            await pool.close()
            logger.info("users service stopped")

    app = FastAPI(
        title="Campus users",
        version="1.0.0",
        summary="Accounts, login and tokens",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.add_middleware(RequestLogMiddleware)
    for module in (auth, users, health):
        app.include_router(module.router)
    return app
