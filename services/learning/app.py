"""The learning service as an ASGI application; ``services.learning.main`` serves it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common import redis_client
from services.common.api import FieldError, install_handlers, invalid, problem_response
from services.common.database import create_pool
from services.common.events import EventWorkers
from services.common.internal import InternalClient
from services.common.request_log import RequestLogMiddleware
from services.learning import SCHEMA
from services.learning.assignments import HANDLERS
from services.learning.errors import Conflict, Invalid, NotFound, Unavailable
from services.learning.routes import (
    certificates,
    courses,
    enrollments,
    health,
    internal,
)
from services.learning.runtime import Runtime
from services.learning.settings import Settings

logger = logging.getLogger(__name__)

STATUS_OF = {NotFound: 404, Conflict: 409, Unavailable: 503}


def create_app(
    settings: Settings | None = None, *, event_workers: bool = True
) -> FastAPI:
    """The application; without ``settings`` they are read from the environment
    when it starts, so that importing it needs no configuration.

    ``event_workers`` runs the outbox relay and the ``learning`` consumer group
    in the process; without them, events stay in the outbox and the stream's
    events wait for another replica.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or Settings.from_env()
        pool = await create_pool(current.database_url)
        redis = redis_client.connect(current.redis_url)
        users = InternalClient(
            "users", current.users_urls, timeout_s=current.users_timeout_s
        )
        workers = EventWorkers(
            pool, redis, SCHEMA, HANDLERS, stream=current.events_stream
        )
        if event_workers:
            workers.start()
        app.state.runtime = Runtime(current, pool, redis, users)
        logger.info(
            "learning service started; event workers %s; users at %s",
            "running" if event_workers else "off",
            ", ".join(current.users_urls),
        )
        try:
            yield
        finally:
            await workers.stop()
            await users.aclose()
            await redis.aclose()
            await pool.close()
            logger.info("learning service stopped")

    app = FastAPI(
        title="Campus learning",
        version="1.0.0",
        summary="Courses, enrollments and certificates",
        lifespan=lifespan,
    )
    install_handlers(app)
    install_error_handlers(app)
    app.add_middleware(RequestLogMiddleware)
    for module in (courses, enrollments, certificates, internal, health):
        app.include_router(module.router)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Answer the service's own errors as problems, by their kind."""
    for kind in STATUS_OF:
        app.add_exception_handler(kind, _on_error)
    app.add_exception_handler(Invalid, _on_invalid)


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    status = next(s for kind, s in STATUS_OF.items() if isinstance(exc, kind))
    return problem_response(status, str(exc))


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Invalid)
    problem = invalid([FieldError(exc.field, exc.reason)])
    return problem_response(problem.status, problem.detail, **problem.extra)
