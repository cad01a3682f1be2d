"""The services' Redis client, and the timeouts every one of them needs.

Without a socket timeout, a Redis that stops answering but keeps its
connections open would hold a caller for ever: the outbox relay, for one,
waits on Redis with its outbox rows locked. With it, such a call fails with
``redis.exceptions.TimeoutError`` (a ``RedisError``) and the caller's usual
retry takes over.

A blocking read (``XREADGROUP ... BLOCK``) waits on the same socket, so its
block time must stay under ``SOCKET_TIMEOUT_S``; ``block_within_timeout``
checks it where a consumer is made.
"""

from __future__ import annotations

import redis.asyncio as aioredis

SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0


def connect(url: str) -> aioredis.Redis:
    """A client of ``url`` that answers in ``str`` and gives up on a silent Redis.

    It connects on first use; a wrong URL raises ValueError here.
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
    )


def socket_timeout_s(client: aioredis.Redis) -> float | None:
    """How long ``client`` waits for an answer: its own setting, else the
    library's default (none before redis-py 8, 5 s since)."""
    # Making a connection object does no I/O; it holds the settled value.
    pool = client.connection_pool
    connection = pool.connection_class(**pool.connection_kwargs)
    timeout_s: float | None = connection.socket_timeout
    return timeout_s


def block_within_timeout(client: aioredis.Redis, block_ms: int, what: str) -> None:
    """ValueError when reads blocking ``block_ms`` would outlast the client's
    socket timeout, which would end every one of them in a TimeoutError."""
    timeout_s = socket_timeout_s(client)
    if timeout_s is not None and block_ms / 1000 >= timeout_s:
        raise ValueError(
            f"{what}: block_ms={block_ms} must be under the Redis client's "
            f"socket timeout of {timeout_s:g}s"
        )
