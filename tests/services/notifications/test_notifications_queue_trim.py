"""The queue stream kept short: senders drop what every group has acknowledged,
and never a message still pending or unread."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
import redis.asyncio as aioredis
from notifications_testkit import eventually

from services.notifications.delivery import RetryPolicy
from services.notifications.mailer import Mailer
from services.notifications.senders import GROUP, Sender
from services.notifications.settings import Settings

pytestmark = pytest.mark.anyio

# Stream nodes hold up to 100 entries: this many fill a few whole ones.
MANY = 300


def sender(
    pool: asyncpg.Pool, redis: aioredis.Redis, settings: Settings, **options: int
) -> Sender:
    mailer = Mailer("127.0.0.1", settings.smtp_port, settings.mail_from, 5.0)
    return Sender(
        pool, redis, mailer, RetryPolicy(5, 0.05, 0.2), stream=settings.queue_stream,
        block_ms=50, **options,
    )  # fmt: skip


async def add(redis: aioredis.Redis, stream: str, count: int) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(stream, {"n": str(n)})
        ids: list[str] = await pipe.execute()
    return ids


async def read_and_ack(
    redis: aioredis.Redis, stream: str, consumer: str, count: int
) -> list[str]:
    """Read ``count`` new messages as ``consumer`` of the senders; acknowledge them."""
    [(_, messages)] = await redis.xreadgroup(GROUP, consumer, {stream: ">"}, count)
    ids = [message_id for message_id, _ in messages]
    await redis.xack(stream, GROUP, *ids)
    return ids


async def ids_from(redis: aioredis.Redis, stream: str, first: str) -> list[str]:
    return [message_id for message_id, _ in await redis.xrange(stream, min=first)]


async def test_trim_keeps_pending_and_unread_messages(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
):
    stream = settings.queue_stream
    trimmer = sender(pool, redis, settings)
    await trimmer.ensure_group()
    await add(redis, stream, MANY)
    await read_and_ack(redis, stream, "quick", MANY)
    [held] = await add(redis, stream, 1)
    await redis.xreadgroup(GROUP, "slow", {stream: ">"}, 1)
    acknowledged = await add(redis, stream, MANY)
    await read_and_ack(redis, stream, "quick", MANY)
    unread = await add(redis, stream, 5)

    removed = await trimmer.trim()

    assert removed > 0
    assert await redis.xlen(stream) == 2 * MANY + 6 - removed
    assert await ids_from(redis, stream, held) == [held, *acknowledged, *unread]
    [pending] = await redis.xpending_range(stream, GROUP, "-", "+", 10)
    assert pending["message_id"] == held


async def test_trim_keeps_what_another_group_has_not_read(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
):
    stream = settings.queue_stream
    trimmer = sender(pool, redis, settings)
    await trimmer.ensure_group()
    await redis.xgroup_create(stream, "auditors", id="0")
    await add(redis, stream, MANY)
    await read_and_ack(redis, stream, "quick", MANY)

    removed = await trimmer.trim()

    assert removed == 0
    assert await redis.xlen(stream) == MANY


async def test_trim_of_a_stream_without_a_group_keeps_everything(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
):
    trimmer = sender(pool, redis, settings)
    missing = await trimmer.trim()
    await add(redis, settings.queue_stream, MANY)

    removed = await trimmer.trim()

    assert (missing, removed) == (0, 0)
    assert await redis.xlen(settings.queue_stream) == MANY


async def test_running_sender_trims_what_it_has_settled(
    settings: Settings,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
):
    # Messages naming no notification are settled at once: dropped and acknowledged.
    caplog.set_level(logging.CRITICAL, logger="services.notifications.senders")
    worker = sender(pool, redis, settings, reclaim_idle_ms=200)
    await worker.ensure_group()
    await add(redis, settings.queue_stream, MANY)

    running = asyncio.create_task(worker.run())
    length = await eventually(
        lambda: redis.xlen(settings.queue_stream),
        until=lambda length: length < MANY // 2,
        what="the sender to trim the messages it acknowledged",
    )
    worker.stop()
    await running

    [group] = await redis.xinfo_groups(settings.queue_stream)
    assert group["pending"] == 0
    assert length > 0  # the node holding the last message read stays


async def test_trim_compares_ids_as_numbers_not_text(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
):
    # Another group still holds 9-299, which is below 10-0 as a number only.
    stream = settings.queue_stream
    trimmer = sender(pool, redis, settings)
    await trimmer.ensure_group()
    await redis.xgroup_create(stream, "auditors", id="0")
    early = [await redis.xadd(stream, {"n": "0"}, id=f"9-{n}") for n in range(MANY)]
    await redis.xreadgroup("auditors", "slow", {stream: ">"}, MANY)
    await redis.xack(stream, "auditors", *early[:-1])
    late = await redis.xadd(stream, {"n": "1"}, id="10-0")
    await read_and_ack(redis, stream, "quick", MANY + 1)

    removed = await trimmer.trim()

    assert removed > 0
    assert await ids_from(redis, stream, "0") == [*early[removed:], late]
    assert removed < MANY


async def test_trim_of_a_key_that_is_no_stream_warns_and_keeps_it(
    settings: Settings,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
):
    await redis.set(settings.queue_stream, "not a stream")
    trimmer = sender(pool, redis, settings, consumer="tidy")

    removed = await trimmer.trim()

    assert removed == 0
    assert await redis.get(settings.queue_stream) == "not a stream"
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith(f"sender tidy cannot trim {settings.queue_stream}: ")
