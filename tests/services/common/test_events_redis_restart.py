"""Redis crashes between the outbox and the consumer: the effect still happens once.

Each test runs a redis-server of its own, started by the harness's local
backend exactly as the stack declares it (``services/stack.toml``: an
append-only file, fsynced every second), kills it with SIGKILL at a chosen
moment and starts it again on the same port and folder. Postgres is the
stack's. A process crash loses nothing that Redis acknowledged: its writes
are in the operating system's hands before it answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisError
from redis_server import RestartableRedis
from stream_checks import settle, until

from harness.endpoints import Endpoints
from services.common import events, redis_client
from services.common.events import Event, EventConsumer, OutboxRelay

GROUP = "effects"
SETTLE_TIMEOUT_S = 20.0


@dataclass
class World:
    pool: asyncpg.Pool
    redis: aioredis.Redis
    server: RestartableRedis
    schema: str
    stream: str

    async def record(self) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            return await events.record(conn, self.schema, "thing.happened", {})

    def relay(self) -> OutboxRelay:
        return OutboxRelay(
            self.pool, self.redis, self.schema, stream=self.stream, poll_s=0.05
        )

    def consumer(
        self, name: str, client: aioredis.Redis | None = None
    ) -> EventConsumer:
        async def effect(conn: asyncpg.Connection, event: Event) -> None:
            await conn.execute(
                f"INSERT INTO {self.schema}.effects (event_id) VALUES ($1)", event.id
            )

        return EventConsumer(
            self.pool, client or self.redis, self.schema, GROUP,
            {"thing.happened": effect},
            consumer=name, stream=self.stream, block_ms=50, reclaim_idle_ms=100,
        )  # fmt: skip

    async def effects(self) -> int:
        return int(
            await self.pool.fetchval(f"SELECT count(*) FROM {self.schema}.effects")
        )

    async def pending(self) -> int:
        """Messages read but not acknowledged; 0 when the stream is gone."""
        if not await self.redis.exists(self.stream):
            return 0
        return int((await self.redis.xpending(self.stream, GROUP))["pending"])

    async def restart_redis(self) -> None:
        self.server.crash()
        self.server.start()
        await until(self.answers, "Redis to answer after its restart")

    async def answers(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except RedisError:
            return False


@asynccontextmanager
async def world(stack: Endpoints, server: RestartableRedis) -> AsyncIterator[World]:
    schema = f"rr_{uuid.uuid4().hex[:12]}"
    pool = await asyncpg.create_pool(stack["postgres"].dsn, min_size=1, max_size=6)
    client = redis_client.connect(server.url)
    try:
        await pool.execute(f"CREATE SCHEMA {schema}")
        for statement in events.schema_ddl(schema):
            await pool.execute(statement)
        await pool.execute(f"CREATE TABLE {schema}.effects (event_id uuid NOT NULL)")
        yield World(pool, client, server, schema, f"test:{schema}")
    finally:
        await client.aclose()
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


def run(
    stack: Endpoints,
    server: RestartableRedis,
    scenario: Callable[[World], Awaitable[None]],
) -> None:
    async def main() -> None:
        async with world(stack, server) as w:
            await scenario(w)

    asyncio.run(main())


@asynccontextmanager
async def running(*loops: OutboxRelay | EventConsumer) -> AsyncIterator[None]:
    """The loops as background tasks, as a service runs them; stopped after."""
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        yield
    finally:
        for loop in loops:
            loop.stop()
        _, lingering = await asyncio.wait(tasks, timeout=5)
        for task in lingering:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def assert_one_effect(w: World) -> None:
    effects = await w.effects()
    assert effects == 1, f"the event took effect {effects} time(s), not once"


def test_relayed_event_survives_a_redis_crash_and_takes_effect_once(
    stack: Endpoints, restartable_redis: RestartableRedis
) -> None:
    async def scenario(w: World) -> None:
        consumer = w.consumer("c1")
        await consumer.ensure_group()
        await w.record()
        assert await w.relay().relay_once() == 1

        await w.restart_redis()

        assert await w.redis.xlen(w.stream) == 1, "the crash lost the relayed event"
        async with running(consumer):
            await settle(
                w.redis,
                w.stream,
                "every message read and acknowledged",
                timeout_s=SETTLE_TIMEOUT_S,
            )
        await assert_one_effect(w)

    run(stack, restartable_redis, scenario)


def test_event_read_by_a_dead_consumer_is_reclaimed_after_a_redis_crash(
    stack: Endpoints, restartable_redis: RestartableRedis
) -> None:
    async def scenario(w: World) -> None:
        survivor = w.consumer("survivor")
        await survivor.ensure_group()
        await w.record()
        await w.relay().relay_once()
        # "doomed" reads the event and dies before handling it.
        await w.redis.xreadgroup(GROUP, "doomed", {w.stream: ">"}, count=1)

        await w.restart_redis()

        assert await w.pending() == 1, "the crash lost the unacknowledged delivery"
        assert await w.effects() == 0
        async with running(survivor):
            await settle(
                w.redis,
                w.stream,
                "every message read and acknowledged",
                timeout_s=SETTLE_TIMEOUT_S,
            )
        await assert_one_effect(w)

    run(stack, restartable_redis, scenario)


def test_event_handled_but_not_acknowledged_takes_no_second_effect_after_a_crash(
    stack: Endpoints, restartable_redis: RestartableRedis
) -> None:
    async def scenario(w: World) -> None:
        survivor = w.consumer("survivor")
        await survivor.ensure_group()
        await w.record()
        await w.relay().relay_once()
        # A Redis user that may do everything but acknowledge: "doomed"
        # commits the effect, then fails where it would acknowledge.
        user = f"noack-{w.schema}"
        await w.redis.execute_command(
            "ACL", "SETUSER", user, "on", "nopass", "~*", "&*", "+@all", "-xack"
        )
        host_port = w.server.url.removeprefix("redis://")
        noack = aioredis.from_url(
            f"redis://{user}:x@{host_port}", decode_responses=True
        )
        try:
            with pytest.raises(NoPermissionError):
                await w.consumer("doomed", noack).consume_once()
        finally:
            await noack.aclose()
        assert (await w.effects(), await w.pending()) == (1, 1)

        await w.restart_redis()

        assert await w.pending() == 1, "the crash lost the unacknowledged delivery"
        async with running(survivor):
            await settle(
                w.redis,
                w.stream,
                "every message read and acknowledged",
                timeout_s=SETTLE_TIMEOUT_S,
            )
        await assert_one_effect(w)

    run(stack, restartable_redis, scenario)


def test_event_recorded_while_redis_is_down_is_delivered_once_it_returns(
    stack: Endpoints,
    restartable_redis: RestartableRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(w: World) -> None:
        relay, consumer = w.relay(), w.consumer("c1")
        await consumer.ensure_group()
        async with running(relay, consumer):
            w.server.crash()
            caplog.clear()
            await w.record()

            async def relay_failed() -> bool:
                return f"outbox relay for {w.schema}: " in caplog.text

            await until(relay_failed, "the relay to fail on the absent Redis")
            unpublished = await w.pool.fetchval(
                f"SELECT count(*) FROM {w.schema}.outbox WHERE published_at IS NULL"
            )
            assert unpublished == 1

            w.server.start()
            await settle(
                w.redis,
                w.stream,
                "every message read and acknowledged",
                timeout_s=SETTLE_TIMEOUT_S,
            )

        await assert_one_effect(w)
        published = await w.pool.fetchval(
            f"SELECT count(*) FROM {w.schema}.outbox WHERE published_at IS NOT NULL"
        )
        assert published == 1

    run(stack, restartable_redis, scenario)
