"""The sender on its own: a full set of slots, attempts used up under new
settings, and a Redis outage."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from notifications_testkit import (
    ADMIN,
    Serve,
    UsersStandIn,
    eventually,
    free_port,
    new_address,
)

from harness.mailbox import Mailbox
from services.common.events import Event
from services.notifications.delivery import RetryPolicy
from services.notifications.mailer import Mailer
from services.notifications.senders import Sender
from services.notifications.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(test_database: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(test_database, min_size=1, max_size=4)
    yield created
    await created.close()


def sender(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    settings: Settings,
    *,
    max_attempts: int = 5,
    **options: Any,
) -> Sender:
    mailer = Mailer("127.0.0.1", settings.smtp_port, settings.mail_from, 5.0)
    policy = RetryPolicy(max_attempts, 0.05, 0.2)
    return Sender(
        pool, redis, mailer, policy, stream=settings.queue_stream, block_ms=50,
        **options,
    )  # fmt: skip


async def queue(redis: aioredis.Redis, stream: str, notification_id: str) -> str:
    message = Event(
        id=str(uuid.uuid4()),
        type="notification.queued",
        source="notifications",
        payload={"notification_id": notification_id},
        occurred_at="2026-01-01T00:00:00+00:00",
    )
    message_id: str = await redis.xadd(stream, message.to_fields())  # type: ignore[arg-type]
    return message_id


async def statuses(db: asyncpg.Connection, ids: list[str]) -> list[str]:
    rows = await db.fetch(
        "SELECT status FROM notifications.notifications WHERE id = ANY($1::uuid[])",
        ids,
    )
    return [row["status"] for row in rows]


async def test_sender_with_one_slot_sends_each_in_turn(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
    mailbox: Mailbox,
):
    email = new_address()
    user_id = users.add(email)
    async with serve(settings, workers=False) as http:
        ids = []
        for n in range(3):
            response = await http.post(
                "/api/v1/notifications",
                json={
                    "user_id": user_id,
                    "template": "announcement",
                    "data": {"subject": f"Number {n}", "body": "B"},
                },
                headers=ADMIN,
            )
            ids.append(response.json()["id"])
    for notification_id in ids:
        await queue(redis, settings.queue_stream, notification_id)
    one_slot = sender(pool, redis, settings, concurrency=1)

    running = asyncio.create_task(one_slot.run())
    await eventually(
        lambda: statuses(db, ids),
        until=lambda found: found == ["sent"] * 3,
        what="three notifications sent one at a time",
    )
    one_slot.stop()
    await running

    assert sorted(m.subject for m in mailbox.messages(to=email)) == [
        "Number 0",
        "Number 1",
        "Number 2",
    ]


async def test_attempts_used_up_under_a_lower_cap_fail_without_sending(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    user_id = users.add(new_address())
    async with serve(settings, workers=False) as http:
        response = await http.post(
            "/api/v1/notifications",
            json={"user_id": user_id, "template": "welcome", "data": {}},
            headers=ADMIN,
        )
    notification_id = response.json()["id"]
    await db.execute(
        """UPDATE notifications.notifications
           SET status = 'retrying', attempts = 3, last_error = 'it was down'
           WHERE id = $1""",
        notification_id,
    )
    await queue(redis, settings.queue_stream, notification_id)
    lowered = sender(pool, redis, settings, max_attempts=2)

    running = asyncio.create_task(lowered.run())
    await eventually(
        lambda: statuses(db, [notification_id]),
        until=lambda found: found == ["failed"],
        what="the notification to fail under the lowered cap",
    )
    lowered.stop()
    await running

    reason = await db.fetchval(
        "SELECT failed_reason FROM notifications.notifications WHERE id = $1",
        uuid.UUID(notification_id),
    )
    assert reason == "gave up after 3 attempts; the last failed: it was down"


async def test_sender_waits_out_a_redis_outage_and_stops_when_asked(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="services.notifications.senders")
    unreachable = aioredis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", decode_responses=True
    )
    stranded = sender(pool, unreachable, settings, consumer="stranded")

    async def warnings() -> list[str]:
        return [record.getMessage() for record in caplog.records]

    running = asyncio.create_task(stranded.run())
    await eventually(
        warnings,
        until=lambda lines: len(lines) >= 2,
        what="the sender to warn twice about Redis",
    )
    stranded.stop()
    await asyncio.wait_for(running, 5)
    await unreachable.aclose()

    first, second = (r.getMessage() for r in caplog.records[:2])
    assert first.startswith("sender stranded: ")
    assert first.endswith("; retrying in 0.1s")
    assert second.endswith("; retrying in 0.2s")
