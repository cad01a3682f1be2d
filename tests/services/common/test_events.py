"""The outbox, its relay and idempotent consumers, on the stack's Postgres and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis

from harness.endpoints import Endpoints
from services.common import events
from services.common.events import Event, EventConsumer, OutboxRelay


@dataclass
class Bus:
    pool: asyncpg.Pool
    redis: aioredis.Redis
    schema: str
    stream: str

    def relay(self, **options: float) -> OutboxRelay:
        return OutboxRelay(
            self.pool, self.redis, self.schema, stream=self.stream, **options
        )  # type: ignore[arg-type]

    def consumer(self, name: str, **options: int) -> EventConsumer:
        async def count(conn: asyncpg.Connection, event: Event) -> None:
            if event.payload.get("fail"):
                raise RuntimeError("handler failed on purpose")
            await conn.execute(
                f"INSERT INTO {self.schema}.effects (event_id) VALUES ($1)", event.id
            )

        return EventConsumer(
            self.pool, self.redis, self.schema, "effects", {"thing.happened": count},
            consumer=name, stream=self.stream, block_ms=10, **options,
        )  # fmt: skip

    async def effects(self) -> list[str]:
        rows = await self.pool.fetch(f"SELECT event_id FROM {self.schema}.effects")
        return [str(r["event_id"]) for r in rows]

    async def record(self, payload: dict[str, object] | None = None) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            return await events.record(
                conn, self.schema, "thing.happened", payload or {}
            )


@asynccontextmanager
async def bus(stack: Endpoints) -> AsyncIterator[Bus]:
    schema = f"ev_{uuid.uuid4().hex[:12]}"
    pool = await asyncpg.create_pool(stack["postgres"].dsn, min_size=1, max_size=4)
    client = aioredis.from_url(stack["redis"].url, decode_responses=True)
    try:
        await pool.execute(f"CREATE SCHEMA {schema}")
        for statement in events.schema_ddl(schema):
            await pool.execute(statement)
        await pool.execute(f"CREATE TABLE {schema}.effects (event_id uuid NOT NULL)")
        yield Bus(pool, client, schema, f"test:{schema}")
    finally:
        await client.delete(f"test:{schema}")
        await client.aclose()
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


def run(stack: Endpoints, scenario: Callable[[Bus], Awaitable[None]]) -> None:
    async def main() -> None:
        async with bus(stack) as b:
            await scenario(b)

    asyncio.run(main())


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout_s: float = 10,
    what: str = "the condition",
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"waited {timeout_s:g}s for {what}"
        await asyncio.sleep(0.02)


async def listening(b: Bus) -> bool:
    """Whether a session of the relay has LISTENed on the schema's channel."""
    sessions = await b.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE query LIKE 'LISTEN %' AND position($1 in query) > 0",
        b.schema,
    )
    return bool(sessions)


def test_relay_publishes_committed_events_once(stack: Endpoints) -> None:
    async def scenario(b: Bus) -> None:
        first = await b.record({"n": 1})

        async def rolled_back() -> None:
            async with b.pool.acquire() as conn, conn.transaction():
                await events.record(conn, b.schema, "thing.happened", {"n": 2})
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await rolled_back()

        assert await b.relay().relay_once() == 1
        assert await b.relay().relay_once() == 0

        [(_, fields)] = await b.redis.xrange(b.stream)
        event = Event.from_fields(fields)
        assert (event.id, event.type, event.payload) == (
            first,
            "thing.happened",
            {"n": 1},
        )
        assert event.source == b.schema

    run(stack, scenario)


def test_consumer_applies_each_event_once_when_delivered_twice(
    stack: Endpoints,
) -> None:
    async def scenario(b: Bus) -> None:
        event_id = await b.record()
        await b.relay().relay_once()
        [(_, fields)] = await b.redis.xrange(b.stream)
        await b.redis.xadd(b.stream, fields)  # a relay that died before its commit
        consumer = b.consumer("c1")
        await consumer.ensure_group()

        assert await consumer.consume_once() == 2

        assert await b.effects() == [event_id]
        assert await b.redis.xpending(b.stream, "effects") == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }

    run(stack, scenario)


def test_consumer_acks_events_it_has_no_handler_for(stack: Endpoints) -> None:
    async def scenario(b: Bus) -> None:
        async with b.pool.acquire() as conn, conn.transaction():
            await events.record(conn, b.schema, "other.thing", {})
        await b.relay().relay_once()
        consumer = b.consumer("c1")
        await consumer.ensure_group()
        await consumer.ensure_group()  # a second start finds the group there

        assert await consumer.consume_once() == 0

        assert (await b.redis.xpending(b.stream, "effects"))["pending"] == 0
        assert await b.effects() == []

    run(stack, scenario)


def test_message_of_dead_consumer_is_reclaimed(stack: Endpoints) -> None:
    async def scenario(b: Bus) -> None:
        event_id = await b.record()
        await b.relay().relay_once()
        survivor = b.consumer("survivor", reclaim_idle_ms=50)
        await survivor.ensure_group()
        # "doomed" reads the message and dies before handling it.
        await b.redis.xreadgroup("effects", "doomed", {b.stream: ">"}, count=1)

        async def handled() -> bool:
            await survivor.consume_once()
            return await b.effects() == [event_id]

        await eventually(handled)
        assert (await b.redis.xpending(b.stream, "effects"))["pending"] == 0

    run(stack, scenario)


def test_consumer_finishes_its_own_pending_after_restart(stack: Endpoints) -> None:
    async def scenario(b: Bus) -> None:
        event_id = await b.record()
        await b.relay().relay_once()
        consumer = b.consumer("c1")
        await consumer.ensure_group()
        await b.redis.xreadgroup("effects", "c1", {b.stream: ">"}, count=1)

        task = asyncio.create_task(consumer.run())
        try:

            async def handled() -> bool:
                return await b.effects() == [event_id]

            await eventually(handled)
        finally:
            task.cancel()

    run(stack, scenario)


def test_failing_handler_is_retried_then_dead_lettered(
    stack: Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(b: Bus) -> None:
        await b.record({"fail": True})
        await b.relay().relay_once()
        consumer = b.consumer("c1", reclaim_idle_ms=0, max_deliveries=2)
        await consumer.ensure_group()
        await b.redis.delete(events.DEAD_LETTERS)

        for _ in range(4):
            assert await consumer.consume_once() == 0

        [(_, buried)] = await b.redis.xrange(events.DEAD_LETTERS)
        assert buried["group"] == "effects"
        assert (await b.redis.xpending(b.stream, "effects"))["pending"] == 0
        await b.redis.delete(events.DEAD_LETTERS)

    run(stack, scenario)

    assert "handler failed on purpose" in caplog.text
    assert "gives up on message" in caplog.text


def test_running_relay_and_consumer_deliver_on_commit(stack: Endpoints) -> None:
    async def scenario(b: Bus) -> None:
        # A poll interval far beyond the deadline: only NOTIFY can wake the relay.
        relay = asyncio.create_task(b.relay(poll_s=600).run())
        consumer = asyncio.create_task(b.consumer("c1").run())
        try:
            await eventually(
                lambda: listening(b), timeout_s=5, what="the relay to LISTEN"
            )
            first = await b.record({"n": 0})

            async def first_delivered() -> bool:
                return await b.effects() == [first]

            await eventually(first_delivered, timeout_s=5, what="the first event")
            # The relay's first pass is behind it: only a NOTIFY wakes it now.
            ids = [await b.record({"n": n}) for n in range(1, 4)]

            async def delivered() -> bool:
                return sorted(await b.effects()) == sorted([first, *ids])

            await eventually(
                delivered, timeout_s=5, what="events woken by NOTIFY to arrive"
            )
        finally:
            relay.cancel()
            consumer.cancel()
            await asyncio.gather(relay, consumer, return_exceptions=True)

    run(stack, scenario)


def test_schema_names_must_be_identifiers() -> None:
    with pytest.raises(
        ValueError, match="schema name 'x; DROP' is not a plain identifier"
    ):
        events.schema_ddl("x; DROP")
