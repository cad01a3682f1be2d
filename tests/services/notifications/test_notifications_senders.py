"""The sender on its own: a full set of slots, attempts used up under new
settings, a Redis outage, and what becomes of an email the SMTP server accepted
when its outcome cannot be recorded or was decided by another worker."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from notifications_testkit import (
    ADMIN,
    Serve,
    SlowSmtp,
    UsersStandIn,
    eventually,
    free_port,
    new_address,
    start_smtp,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from harness.mailbox import Mailbox
from services.common.events import Event
from services.notifications import delivery
from services.notifications.delivery import RetryPolicy
from services.notifications.mailer import Mailer
from services.notifications.senders import Sender
from services.notifications.settings import Settings

pytestmark = pytest.mark.anyio


def sender(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    settings: Settings,
    *,
    max_attempts: int = 5,
    smtp_port: int | None = None,
    timeout_s: float = 5.0,
    **options: Any,
) -> Sender:
    port = settings.smtp_port if smtp_port is None else smtp_port
    mailer = Mailer("127.0.0.1", port, settings.mail_from, timeout_s)
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


async def announced(serve: Serve, settings: Settings, user_id: str) -> str:
    """A notification queued by an admin, with the workers off: not sent yet."""
    async with serve(settings, workers=False) as http:
        response = await http.post(
            "/api/v1/notifications",
            json={
                "user_id": user_id,
                "template": "announcement",
                "data": {"subject": "Hi", "body": "Body."},
            },
            headers=ADMIN,
        )
    notification_id: str = response.json()["id"]
    return notification_id


async def row(db: asyncpg.Connection, notification_id: str) -> dict[str, Any]:
    found = await db.fetchrow(
        "SELECT * FROM notifications.notifications WHERE id = $1",
        uuid.UUID(notification_id),
    )
    history = await db.fetch(
        """SELECT status, attempt FROM notifications.history
           WHERE notification_id = $1 ORDER BY seq""",
        uuid.UUID(notification_id),
    )
    return {**dict(found), "history": [(h["status"], h["attempt"]) for h in history]}


async def pending(redis: aioredis.Redis, stream: str) -> int:
    [group] = await redis.xinfo_groups(stream)
    return int(group["pending"])


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


async def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return logged(caplog)


VANISHED = (
    "the worker making attempt 1 stopped before recording its outcome; not "
    "sent again, as the email may have been delivered"
)


async def test_email_accepted_but_not_recorded_fails_as_maybe_delivered(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    caplog.set_level(logging.WARNING, logger="services.notifications.senders")
    email = new_address()
    notification_id = await announced(serve, settings, users.add(email))
    recorded = delivery.sent

    async def postgres_gone(*args: Any) -> bool:
        monkeypatch.setattr(delivery, "sent", recorded)
        raise asyncpg.exceptions.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )

    monkeypatch.setattr(delivery, "sent", postgres_gone)
    await queue(redis, settings.queue_stream, notification_id)
    worker = sender(pool, redis, settings, reclaim_idle_ms=200)

    running = asyncio.create_task(worker.run())
    await eventually(
        lambda: log_lines(caplog),
        until=lambda lines: any("interrupted" in line for line in lines),
        what="the delivery to be interrupted after the SMTP server accepted",
    )
    meanwhile = await row(db, notification_id)
    # The lease of the interrupted attempt passes.
    await db.execute(
        """UPDATE notifications.notifications
           SET attempt_started_at = now() - interval '1 hour' WHERE id = $1""",
        uuid.UUID(notification_id),
    )
    settled = await eventually(
        lambda: row(db, notification_id),
        until=lambda found: found["status"] == "failed",
        what="the notification to fail as maybe delivered",
    )
    await eventually(
        lambda: pending(redis, settings.queue_stream),
        until=lambda count: count == 0,
        what="the queue message to be acknowledged",
    )
    worker.stop()
    await running

    assert (meanwhile["status"], meanwhile["attempts"]) == ("sending", 1)
    assert f"delivery of notification {notification_id} interrupted: " in "\n".join(
        logged(caplog)
    )
    assert settled["failed_reason"] == VANISHED
    assert settled["sent_at"] is None
    assert settled["history"] == [("queued", None), ("failed", 1)]
    assert len(mailbox.messages(to=email)) == 1


async def test_email_recorded_but_not_acknowledged_is_not_sent_again(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    caplog.set_level(logging.WARNING, logger="services.notifications.senders")
    email = new_address()
    notification_id = await announced(serve, settings, users.add(email))
    acknowledge = redis.xack

    async def redis_gone(*args: Any) -> int:
        monkeypatch.setattr(redis, "xack", acknowledge)
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(redis, "xack", redis_gone)
    message_id = await queue(redis, settings.queue_stream, notification_id)
    worker = sender(pool, redis, settings, reclaim_idle_ms=200)

    running = asyncio.create_task(worker.run())
    await eventually(
        lambda: log_lines(caplog),
        until=lambda lines: any("cannot acknowledge" in line for line in lines),
        what="the acknowledgement to fail after the notification was sent",
    )
    await eventually(
        lambda: pending(redis, settings.queue_stream),
        until=lambda count: count == 0,
        what="the queue message to be acknowledged when taken up again",
    )
    worker.stop()
    await running

    settled = await row(db, notification_id)
    assert logged(caplog) == [
        f"cannot acknowledge queue message {message_id}: Connection reset by peer"
    ]
    assert settled["status"] == "sent"
    assert settled["history"] == [("queued", None), ("sent", 1)]
    assert len(mailbox.messages(to=email)) == 1


async def test_email_sent_after_it_was_given_up_stays_failed(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.WARNING, logger="services.notifications.senders")
    email = new_address()
    notification_id = await announced(serve, settings, users.add(email))
    server = SlowSmtp(stage="DATA")
    controller = start_smtp(server)
    slow = sender(
        pool, redis, settings, smtp_port=controller.port, timeout_s=60.0,
        reclaim_idle_ms=60_000,
    )  # fmt: skip
    rescuer = sender(pool, redis, settings, reclaim_idle_ms=200)
    try:
        await queue(redis, settings.queue_stream, notification_id)
        running = [asyncio.create_task(slow.run())]

        async def held() -> int:
            return server.held

        await eventually(
            held,
            until=lambda count: count == 1,
            what="the SMTP server to hold its answer to the email",
        )
        # The slow worker's lease passes; another worker takes the message over.
        await db.execute(
            """UPDATE notifications.notifications
               SET attempt_started_at = now() - interval '1 hour' WHERE id = $1""",
            uuid.UUID(notification_id),
        )
        running.append(asyncio.create_task(rescuer.run()))
        given_up = await eventually(
            lambda: row(db, notification_id),
            until=lambda found: found["status"] == "failed",
            what="the other worker to give the notification up",
        )
        server.answer()
        await eventually(
            lambda: log_lines(caplog),
            until=lambda lines: any("given up meanwhile" in line for line in lines),
            what="the slow worker to learn that it was given up",
        )
        await eventually(
            lambda: pending(redis, settings.queue_stream),
            until=lambda count: count == 0,
            what="the queue message to be acknowledged",
        )
    finally:
        server.answer()
        slow.stop()
        rescuer.stop()
        await asyncio.gather(*running)
        controller.stop()

    settled = await row(db, notification_id)
    assert given_up["failed_reason"] == VANISHED
    assert settled == given_up
    assert [envelope.rcpt_tos for envelope in server.stored] == [[email]]
    assert (
        f"notification {notification_id} was sent, but had been given up meanwhile"
        in logged(caplog)
    )
