"""A service's connection pool to Postgres, and URLs fit for logs."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.common.errors import DatabaseError

logger = logging.getLogger(__name__)

POOL_MAX_SIZE = 10
COMMAND_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0


def redact(url: str) -> str:
    """``url`` without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


async def create_pool(database_url: str) -> asyncpg.Pool:
    """A pool of connections to ``database_url``; DatabaseError when unreachable."""
    try:
        pool = await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            command_timeout=COMMAND_TIMEOUT_S,
            timeout=CONNECT_TIMEOUT_S,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseError(
            f"cannot connect to DATABASE_URL={redact(database_url)}: {exc}"
        ) from exc
    except (ValueError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(
            f"DATABASE_URL={redact(database_url)} is not a Postgres URL: {exc}"
        ) from exc
    logger.info("connected to %s", redact(database_url))
    return pool
