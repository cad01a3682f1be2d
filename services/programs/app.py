"""The programs service as an ASGI application; ``services.programs.main`` serves it.

Each replica also runs the service's event workers: the outbox relay that
publishes ``program.assigned``, and the consumer (group ``programs``) of
``user.registered`` and of the learning service's enrollment events.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common import redis_client
from services.common.api import install_handlers, problem_response
from services.common.database import create_pool
from services.common.events import EventWorkers, Handler
from services.common.internal import InternalClient
from services.common.request_log import RequestLogMiddleware, request_context
from services.programs import SCHEMA, onboarding, progress
from services.programs.directory import Directory
from services.programs.errors import DependencyDown
from services.programs.routes import health, programs
from services.programs.routes import progress as progress_routes
from services.programs.runtime import Runtime
from services.programs.settings import Settings

logger = logging.getLogger(__name__)

HANDLERS: dict[str, Handler] = {**onboarding.HANDLERS, **progress.HANDLERS}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; without ``settings`` they are read from the environment
    when it starts, so that importing it needs no configuration."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or Settings.from_env()
        pool = await create_pool(current.database_url)
        redis = redis_client.connect(current.redis_url)
        directory = Directory(
            InternalClient(
                "users", current.users_urls, timeout_s=current.internal_timeout_s
            ),
            InternalClient(
                "learning", current.learning_urls, timeout_s=current.internal_timeout_s
            ),
        )
        workers = EventWorkers(
            pool, redis, SCHEMA, HANDLERS, stream=current.events_stream
        )
        workers.start()
        app.state.runtime = Runtime(current, pool, redis, directory)
        logger.info(
            "programs service started; consuming %s", ", ".join(sorted(HANDLERS))
        )
        try:
            yield
        finally:
            await workers.stop()
            await directory.aclose()
            await redis.aclose()
            await pool.close()
            logger.info("programs service stopped")

    app = FastAPI(
        title="Campus programs",
        version="1.0.0",
        summary="Learning programs, assignments and progress",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.add_exception_handler(DependencyDown, _on_dependency_down)
    app.add_middleware(RequestLogMiddleware)
    # progress first: its /programs/me must not be read as a program id.
    for module in (progress_routes, programs, health):
        app.include_router(module.router)
    return app


async def _on_dependency_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("answering 503: %s", exc, extra=request_context())
    return problem_response(503, f"{exc}; nothing was changed, try again later")
