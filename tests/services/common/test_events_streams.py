"""An outbox row may name its own stream: the relay publishes it there, and
everything else to the relay's stream, as before."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import redis.asyncio as aioredis

from harness.endpoints import Endpoints
from services.common import events
from services.common.events import Event, EventWorkers, OutboxRelay


def test_relay_publishes_each_row_to_its_stream(stack: Endpoints) -> None:
    async def scenario() -> None:
        schema = f"ev_{uuid.uuid4().hex[:12]}"
        default, own = f"test:{schema}:events", f"test:{schema}:queue"
        pool = await asyncpg.create_pool(stack["postgres"].dsn, min_size=1, max_size=2)
        redis = aioredis.from_url(stack["redis"].url, decode_responses=True)
        try:
            await pool.execute(f"CREATE SCHEMA {schema}")
            for statement in events.schema_ddl(schema):
                await pool.execute(statement)
            async with pool.acquire() as conn, conn.transaction():
                plain = await events.record(conn, schema, "thing.happened", {"n": 1})
                queued = await events.record(
                    conn, schema, "work.queued", {"n": 2}, stream=own
                )

            assert (
                await OutboxRelay(pool, redis, schema, stream=default).relay_once() == 2
            )

            [(_, on_default)] = await redis.xrange(default)
            [(_, on_own)] = await redis.xrange(own)
            assert Event.from_fields(on_default).id == plain
            assert Event.from_fields(on_own).id == queued
            assert Event.from_fields(on_own).payload == {"n": 2}
        finally:
            await redis.delete(default, own)
            await redis.aclose()
            await pool.execute(f"DROP SCHEMA {schema} CASCADE")
            await pool.close()

    asyncio.run(scenario())


def test_schema_ddl_adds_the_stream_column_to_an_older_outbox(
    stack: Endpoints,
) -> None:
    async def scenario() -> None:
        schema = f"ev_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(stack["postgres"].dsn)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(
                f"""CREATE TABLE {schema}.outbox (
                    seq bigserial PRIMARY KEY, id uuid NOT NULL UNIQUE,
                    type text NOT NULL, payload jsonb NOT NULL,
                    occurred_at timestamptz NOT NULL DEFAULT now(),
                    published_at timestamptz)"""
            )
            for statement in events.schema_ddl(schema):
                await conn.execute(statement)
            columns = await conn.fetch(
                """SELECT column_name FROM information_schema.columns
                   WHERE table_schema = $1 AND table_name = 'outbox'""",
                schema,
            )
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()

        assert "stream" in {row["column_name"] for row in columns}

    asyncio.run(scenario())


def test_event_workers_read_and_publish_the_stream_given(stack: Endpoints) -> None:
    async def scenario() -> None:
        schema = f"ev_{uuid.uuid4().hex[:12]}"
        stream = f"test:{schema}"
        pool = await asyncpg.create_pool(stack["postgres"].dsn, min_size=1, max_size=4)
        redis = aioredis.from_url(stack["redis"].url, decode_responses=True)
        seen: list[str] = []

        async def handle(conn: asyncpg.Connection, event: Event) -> None:
            seen.append(event.id)

        try:
            await pool.execute(f"CREATE SCHEMA {schema}")
            for statement in events.schema_ddl(schema):
                await pool.execute(statement)
            workers = EventWorkers(
                pool, redis, schema, {"thing.happened": handle}, stream=stream
            )
            assert workers.consumer is not None
            assert (workers.relay.stream, workers.consumer.stream) == (stream, stream)
            workers.start()
            async with pool.acquire() as conn, conn.transaction():
                event_id = await events.record(conn, schema, "thing.happened", {})
            deadline = asyncio.get_running_loop().time() + 10
            while seen != [event_id]:
                assert asyncio.get_running_loop().time() < deadline, seen
                await asyncio.sleep(0.02)
            await workers.stop()
        finally:
            await redis.delete(stream)
            await redis.aclose()
            await pool.execute(f"DROP SCHEMA {schema} CASCADE")
            await pool.close()

    asyncio.run(scenario())
