"""The notifications service as an ASGI application; ``services.notifications.main``
serves it."""

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
from services.common.internal import InternalClient
from services.common.request_log import RequestLogMiddleware
from services.notifications import SCHEMA
from services.notifications.delivery import RetryPolicy
from services.notifications.mailer import Mailer
from services.notifications.people import Directory
from services.notifications.routes import health, notifications
from services.notifications.runtime import Runtime
from services.notifications.senders import Sender
from services.notifications.settings import Settings
from services.notifications.triggers import Triggers

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


def create_app(settings: Settings | None = None, *, workers: bool = True) -> FastAPI:
    """The application; without ``settings`` they are read from the environment
    when it starts, so that importing it needs no configuration.

    ``workers`` runs, in the process, the outbox relay, the ``notifications``
    consumer group of the domain events and a sender of the queue; without
    them, the API queues notifications that another replica sends.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or Settings.from_env()
        pool = await create_pool(current.database_url)
        redis = redis_client.connect(current.redis_url)
        users = InternalClient.from_setting("users", current.users_urls)
        triggers = Triggers(Directory(users), current.queue_stream)
        events = EventWorkers(
            pool, redis, SCHEMA, triggers.handlers(), stream=current.events_stream
        )
        sender = Sender(
            pool,
            redis,
            Mailer(
                current.smtp_host,
                current.smtp_port,
                current.mail_from,
                current.smtp_timeout_s,
            ),
            RetryPolicy(current.max_attempts, current.backoff_s, current.backoff_max_s),
            stream=current.queue_stream,
            reclaim_idle_ms=int(current.reclaim_idle_s * 1000),
        )
        sending: asyncio.Task[None] | None = None
        if workers:
            events.start()
            sending = asyncio.create_task(sender.run())
        app.state.runtime = Runtime(current, pool, redis, triggers)
        logger.info(
            "notifications service started; workers %s; SMTP at %s:%d; queue %s",
            "running" if workers else "off",
            current.smtp_host,
            current.smtp_port,
            current.queue_stream,
        )
        try:
            yield
        finally:
            sender.stop()
            if sending is not None:
                await _stopped(sending)
            await events.stop(STOP_TIMEOUT_S)
            await users.aclose()
            await redis.aclose()
            await pool.close()
            logger.info("notifications service stopped")

    app = FastAPI(
        title="Campus notifications",
        version="1.0.0",
        summary="Emails to users, and what became of them",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.add_middleware(RequestLogMiddleware)
    for module in (notifications, health):
        app.include_router(module.router)
    return app


async def _stopped(task: asyncio.Task[None]) -> None:
    """Let the sender finish the sends in hand, then cancel what lingers."""
    done, _ = await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
    if not done:
        logger.warning("sender did not stop in %gs; cancelled", STOP_TIMEOUT_S)
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
