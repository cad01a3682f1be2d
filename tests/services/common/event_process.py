"""A relay or a consumer in a process of its own, for tests that kill it.

    python event_process.py relay DSN REDIS_URL SCHEMA STREAM
    python event_process.py consume DSN REDIS_URL SCHEMA STREAM CONSUMER

The consumer's handler inserts the event id into ``SCHEMA.effects``.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import asyncpg
import redis.asyncio as aioredis

from services.common.events import Event, EventConsumer, OutboxRelay


async def main(
    role: str, dsn: str, redis_url: str, schema: str, stream: str, *rest: str
) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    redis = aioredis.from_url(redis_url, decode_responses=True)

    async def effect(conn: asyncpg.Connection, event: Event) -> None:
        await conn.execute(
            f"INSERT INTO {schema}.effects (event_id) VALUES ($1)", event.id
        )

    if role == "relay":
        await OutboxRelay(pool, redis, schema, stream=stream, poll_s=0.05).run()
    else:
        consumer = EventConsumer(
            pool, redis, schema, "effects", {"thing.happened": effect},
            consumer=rest[0], stream=stream, block_ms=50, reclaim_idle_ms=100,
        )  # fmt: skip
        await consumer.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG)
    asyncio.run(main(*sys.argv[1:]))
