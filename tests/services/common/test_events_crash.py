"""Relays and consumers killed at the worst moment: the effect still happens once.

Each test holds the process at a precise point (a table lock, or Redis
pausing writes), kills it there with SIGKILL, and starts another.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from stream_checks import settle, until

from harness.endpoints import Endpoints
from services.common import events

RUNNER = Path(__file__).with_name("event_process.py")
ROOT = Path(__file__).parents[3]


@dataclass
class World:
    dsn: str
    redis_url: str
    pool: asyncpg.Pool
    redis: aioredis.Redis
    schema: str
    stream: str

    def start(self, role: str, *extra: str) -> subprocess.Popen[bytes]:
        return self.start_as(self.redis_url, role, *extra)

    def start_as(
        self, redis_url: str, role: str, *extra: str
    ) -> subprocess.Popen[bytes]:
        argv = [sys.executable, str(RUNNER), role, self.dsn, redis_url,
                self.schema, self.stream, *extra]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def effects(self) -> int:
        return int(
            await self.pool.fetchval(f"SELECT count(*) FROM {self.schema}.effects")
        )

    async def record(self) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            return await events.record(conn, self.schema, "thing.happened", {})


@asynccontextmanager
async def world(stack: Endpoints) -> AsyncIterator[World]:
    schema = f"crash_{uuid.uuid4().hex[:12]}"
    dsn, redis_url = stack["postgres"].dsn, stack["redis"].url
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    client = aioredis.from_url(redis_url, decode_responses=True)
    stream = f"test:{schema}"
    try:
        await pool.execute(f"CREATE SCHEMA {schema}")
        for statement in events.schema_ddl(schema):
            await pool.execute(statement)
        await pool.execute(f"CREATE TABLE {schema}.effects (event_id uuid NOT NULL)")
        yield World(dsn, redis_url, pool, client, schema, stream)
    finally:
        await client.delete(stream)
        await client.aclose()
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


async def assert_one_effect(w: World) -> None:
    effects = await w.effects()
    assert effects == 1, f"the event took effect {effects} time(s), not once"


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def run(stack: Endpoints, scenario: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        async with world(stack) as w:
            await scenario(w)

    asyncio.run(main())


def test_relay_killed_after_publishing_before_commit(stack: Endpoints) -> None:
    async def scenario(w: World) -> None:
        await w.record()
        async with w.pool.acquire() as blocker, blocker.transaction():
            # SHARE lets the relay select and publish, but not mark as published.
            await blocker.execute(f"LOCK TABLE {w.schema}.outbox IN SHARE MODE")
            relay = w.start("relay")
            try:

                async def published() -> bool:
                    return await w.redis.xlen(w.stream) == 1

                await until(published, "the relay to publish")
            finally:
                kill(relay)
        unpublished = await w.pool.fetchval(
            f"SELECT count(*) FROM {w.schema}.outbox WHERE published_at IS NULL"
        )
        assert unpublished == 1

        relay, consumer = w.start("relay"), w.start("consume", "c1")
        try:
            await settle(
                w.redis,
                w.stream,
                "the second relay, then both copies consumed",
                copies=2,
            )
        finally:
            kill(relay)
            kill(consumer)

        await assert_one_effect(w)

    run(stack, scenario)


def test_consumer_killed_while_handling(stack: Endpoints) -> None:
    async def scenario(w: World) -> None:
        await w.record()
        relay = w.start("relay")
        try:
            async with w.pool.acquire() as blocker, blocker.transaction():
                # The handler's insert waits on this lock: the consumer holds the
                # message, read but neither handled nor acknowledged.
                await blocker.execute(f"LOCK TABLE {w.schema}.effects IN SHARE MODE")
                doomed = w.start("consume", "doomed")
                try:

                    async def held() -> bool:
                        groups = (
                            await w.redis.xinfo_groups(w.stream)
                            if await w.redis.exists(w.stream)
                            else []
                        )
                        return bool(groups) and groups[0]["pending"] == 1

                    await until(held, "the consumer to read the event")
                finally:
                    kill(doomed)
            assert await w.effects() == 0

            survivor = w.start("consume", "survivor")
            try:
                await settle(
                    w.redis,
                    w.stream,
                    "the survivor to reclaim and acknowledge the event",
                    copies=1,
                )
            finally:
                kill(survivor)
        finally:
            kill(relay)

        await assert_one_effect(w)

    run(stack, scenario)


def test_consumer_killed_after_handling_before_ack(stack: Endpoints) -> None:
    async def scenario(w: World) -> None:
        await w.record()
        relay = w.start("relay")
        try:

            async def published() -> bool:
                return await w.redis.xlen(w.stream) == 1

            await until(published, "the relay to publish")
        finally:
            kill(relay)
        await w.redis.xgroup_create(w.stream, "effects", id="0")
        # A Redis user that may do everything but acknowledge: the consumer
        # commits its effect, then fails where it would acknowledge.
        user = f"noack-{w.schema}"
        await w.redis.execute_command(
            "ACL", "SETUSER", user, "on", "nopass", "~*", "&*", "+@all", "-xack"
        )
        try:
            host, port = w.redis_url.removeprefix("redis://").split("/")[0].split(":")
            doomed = w.start_as(
                f"redis://{user}:x@{host}:{port}/0", "consume", "doomed"
            )
            try:

                async def handled() -> bool:
                    return await w.effects() > 0

                await until(handled, "the consumer to handle the event")
            finally:
                kill(doomed)
        finally:
            await w.redis.execute_command("ACL", "DELUSER", user)
        # Handled and committed, never acknowledged.
        assert (await w.redis.xpending(w.stream, "effects"))["pending"] == 1

        survivor = w.start("consume", "survivor")
        try:
            await settle(
                w.redis,
                w.stream,
                "the survivor to reclaim and acknowledge the event",
                copies=1,
            )
        finally:
            kill(survivor)

        await assert_one_effect(w)

    run(stack, scenario)
