"""The services' Redis client gives up on a Redis that stops answering without
closing its connections, and blocking reads still fit under its timeout."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeout
from redis_server import RestartableRedis

from harness.endpoints import Endpoints
from services.common import events, redis_client
from services.common.events import EventConsumer, OutboxRelay
from services.common.redis_client import SOCKET_TIMEOUT_S

# How much longer than the socket timeout a call may take before the test
# concludes that it would never have returned.
GRACE_S = 10.0


@asynccontextmanager
async def outbox(stack: Endpoints) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    schema = f"rc_{uuid.uuid4().hex[:12]}"
    pool = await asyncpg.create_pool(stack["postgres"].dsn, min_size=1, max_size=4)
    try:
        await pool.execute(f"CREATE SCHEMA {schema}")
        for statement in events.schema_ddl(schema):
            await pool.execute(statement)
        yield pool, schema
    finally:
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


def test_relay_gives_up_on_a_silent_redis_and_unlocks_its_rows(
    stack: Endpoints, restartable_redis: RestartableRedis
) -> None:
    async def scenario() -> None:
        async with outbox(stack) as (pool, schema):
            async with pool.acquire() as conn, conn.transaction():
                await events.record(conn, schema, "thing.happened", {})
            client = redis_client.connect(restartable_redis.url)
            relay = OutboxRelay(pool, client, schema, stream=f"test:{schema}")
            try:
                assert await client.ping()  # connected, then Redis hangs
                restartable_redis.pause()
                started = time.monotonic()
                with pytest.raises(RedisTimeout):
                    await asyncio.wait_for(
                        relay.relay_once(), SOCKET_TIMEOUT_S + GRACE_S
                    )
                waited_s = time.monotonic() - started
            finally:
                restartable_redis.resume()
                await client.aclose()

            assert SOCKET_TIMEOUT_S <= waited_s < SOCKET_TIMEOUT_S + GRACE_S
            # The relay's transaction is over: its row is free and unpublished.
            async with pool.acquire() as conn, conn.transaction():
                unpublished = await conn.fetch(
                    f"SELECT id FROM {schema}.outbox WHERE published_at IS NULL "
                    "FOR UPDATE NOWAIT"
                )
            assert len(unpublished) == 1

    asyncio.run(scenario())


def test_blocking_read_under_the_socket_timeout_returns_empty(
    stack: Endpoints,
) -> None:
    async def scenario() -> None:
        async with outbox(stack) as (pool, schema):
            client = redis_client.connect(stack["redis"].url)
            stream = f"test:{schema}"
            block_ms = int(SOCKET_TIMEOUT_S * 1000) - 500
            consumer = EventConsumer(
                pool, client, schema, "effects", {}, stream=stream, block_ms=block_ms
            )
            try:
                await consumer.ensure_group()
                started = time.monotonic()

                assert await consumer.consume_once() == 0

                assert time.monotonic() - started >= block_ms / 1000 - 0.1
            finally:
                await client.delete(stream)
                await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("block_ms", [int(SOCKET_TIMEOUT_S * 1000), 60_000])
def test_consumer_blocking_as_long_as_the_socket_timeout_is_refused(
    block_ms: int,
) -> None:
    client = redis_client.connect("redis://127.0.0.1:9/0")

    with pytest.raises(ValueError, match="block_ms") as refused:
        EventConsumer(None, client, "s", "effects", {}, block_ms=block_ms)

    assert str(refused.value) == (
        f"consumer group effects: block_ms={block_ms} must be under the Redis "
        f"client's socket timeout of {SOCKET_TIMEOUT_S:g}s"
    )


def test_client_without_a_socket_timeout_may_block_as_long_as_it_likes() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=None)

    consumer = EventConsumer(None, client, "s", "effects", {}, block_ms=60_000)

    assert consumer.block_ms == 60_000


def test_client_left_to_the_library_default_is_checked_against_it() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0")
    connection = client.connection_pool.make_connection()

    assert redis_client.socket_timeout_s(client) == connection.socket_timeout


def test_connect_sets_both_timeouts() -> None:
    client = redis_client.connect("redis://127.0.0.1:9/0")

    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == SOCKET_TIMEOUT_S
    assert options["socket_connect_timeout"] == redis_client.CONNECT_TIMEOUT_S
    assert options["decode_responses"] is True
