"""Sending over real SMTP: retries of transient failures with backoff, the cap,
permanent failures, and at most one email per notification however often its
queue message is delivered or whoever takes it over."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from notifications_testkit import (
    ADMIN,
    RefusingSmtp,
    Serve,
    SinkProcess,
    SlowSmtp,
    UsersStandIn,
    eventually,
    new_address,
    start_smtp,
)

from harness.mailbox import Mailbox
from services.notifications.senders import GROUP
from services.notifications.settings import Settings

pytestmark = pytest.mark.anyio


async def announce(http: httpx.AsyncClient, user_id: str, subject: str = "Hi") -> str:
    response = await http.post(
        "/api/v1/notifications",
        json={
            "user_id": user_id,
            "template": "announcement",
            "data": {"subject": subject, "body": "Body."},
        },
        headers=ADMIN,
    )
    assert response.status_code == 202, response.text
    notification_id: str = response.json()["id"]
    return notification_id


async def detail(http: httpx.AsyncClient, notification_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/notifications/{notification_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def until_settled(
    http: httpx.AsyncClient, notification_id: str
) -> dict[str, Any]:
    return await eventually(
        lambda: detail(http, notification_id),
        until=lambda body: body["status"] != "queued",
        what=f"notification {notification_id} to be sent or to fail",
    )


async def until_history(
    http: httpx.AsyncClient, notification_id: str, entries: int
) -> dict[str, Any]:
    return await eventually(
        lambda: detail(http, notification_id),
        until=lambda body: len(body["history"]) >= entries,
        what=f"{entries} history entries of notification {notification_id}",
    )


def statuses(body: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(entry["status"], entry["attempt"]) for entry in body["history"]]


async def queue_drained(redis: aioredis.Redis, stream: str, last_id: str) -> None:
    """Wait until the senders have read up to ``last_id`` and acknowledged all."""

    async def group() -> dict[str, Any]:
        [info] = await redis.xinfo_groups(stream)
        return dict(info)

    await eventually(
        group,
        until=lambda info: (
            info["last-delivered-id"] == last_id and info["pending"] == 0
        ),
        what=f"the senders to acknowledge every message of {stream} up to {last_id}",
    )


async def test_sink_stopped_then_back_is_retried_until_sent(
    settings: Settings, serve: Serve, users: UsersStandIn, spare_sink: SinkProcess
):
    email = new_address()
    user_id = users.add(email)
    spare_sink.start()

    async with serve(
        settings, smtp_port=spare_sink.smtp_port, max_attempts=50, backoff_max_s=0.1
    ) as http:
        before = await announce(http, user_id, "Before")
        assert (await until_settled(http, before))["status"] == "sent"
        spare_sink.stop()
        during = await announce(http, user_id, "During")
        await until_history(http, during, 3)  # queued, and two failed attempts
        spare_sink.start()
        body = await until_settled(http, during)

    assert body["status"] == "sent"
    assert body["failed_reason"] is None
    history = statuses(body)
    attempts = body["attempts"]
    assert attempts >= 3
    assert history == [
        ("queued", None),
        *[("retrying", n) for n in range(1, attempts)],
        ("sent", attempts),
    ]
    retried = body["history"][1]["detail"]
    assert retried.startswith(
        f"cannot deliver to the SMTP server at 127.0.0.1:{spare_sink.smtp_port}: "
    )
    assert retried.endswith("; attempt 2 in 0.05s")
    with Mailbox(spare_sink.url) as mailbox:
        [mail] = mailbox.messages(to=email)
    assert mail.subject == "During"


async def test_attempts_used_up_fails_with_the_last_reason(
    settings: Settings, serve: Serve, users: UsersStandIn, spare_sink: SinkProcess
):
    user_id = users.add(new_address())

    async with serve(settings, smtp_port=spare_sink.smtp_port, max_attempts=3) as http:
        notification_id = await announce(http, user_id)
        body = await until_settled(http, notification_id)

    assert body["status"] == "failed"
    assert body["sent_at"] is None
    assert body["attempts"] == 3
    assert statuses(body) == [
        ("queued", None),
        ("retrying", 1),
        ("retrying", 2),
        ("failed", 3),
    ]
    reason = body["failed_reason"]
    assert reason.startswith(
        "gave up after 3 attempts; the last failed: cannot deliver to the SMTP "
        f"server at 127.0.0.1:{spare_sink.smtp_port}: "
    )
    assert body["history"][-1]["detail"] == reason
    # Backoff doubles from 0.05s and is capped at 0.2s.
    assert body["history"][1]["detail"].endswith("; attempt 2 in 0.05s")
    assert body["history"][2]["detail"].endswith("; attempt 3 in 0.1s")


async def test_recipient_refused_with_5xx_fails_at_once(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    email = new_address()
    user_id = users.add(email)
    smtp = RefusingSmtp("550 5.1.1 mailbox unavailable")
    controller = start_smtp(smtp)
    try:
        async with serve(settings, smtp_port=controller.port) as http:
            notification_id = await announce(http, user_id)
            body = await until_settled(http, notification_id)
    finally:
        controller.stop()

    assert body["status"] == "failed"
    assert body["attempts"] == 1
    assert statuses(body) == [("queued", None), ("failed", 1)]
    assert body["failed_reason"] == (
        f"the SMTP server refused the recipient {email!r}: "
        "550 5.1.1 mailbox unavailable"
    )
    assert smtp.refused == 1
    assert smtp.accepted == []


async def test_recipient_refused_with_4xx_is_retried(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    email = new_address()
    user_id = users.add(email)
    smtp = RefusingSmtp("451 4.3.0 try again later", times=2)
    controller = start_smtp(smtp)
    try:
        async with serve(settings, smtp_port=controller.port) as http:
            notification_id = await announce(http, user_id)
            body = await until_settled(http, notification_id)
    finally:
        controller.stop()

    assert body["status"] == "sent"
    assert statuses(body) == [
        ("queued", None),
        ("retrying", 1),
        ("retrying", 2),
        ("sent", 3),
    ]
    assert body["history"][1]["detail"] == (
        f"the SMTP server refused the recipient {email!r}: "
        "451 4.3.0 try again later; attempt 2 in 0.05s"
    )
    assert [envelope.rcpt_tos for envelope in smtp.accepted] == [[email]]


async def test_email_answered_after_the_timeout_is_not_sent_again(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    email = new_address()
    user_id = users.add(email)
    server = SlowSmtp(stage="DATA")
    controller = start_smtp(server)
    try:
        async with serve(
            settings, smtp_port=controller.port, smtp_timeout_s=0.5
        ) as http:
            notification_id = await announce(http, user_id)
            body = await until_settled(http, notification_id)
    finally:
        server.answer()
        controller.stop()

    assert body["status"] == "failed"
    assert body["sent_at"] is None
    assert statuses(body) == [("queued", None), ("failed", 1)]
    assert body["failed_reason"] == (
        f"the SMTP server at 127.0.0.1:{controller.port} did not answer once the "
        "whole email was sent (timed out); not sent again, as the email may have "
        "been delivered"
    )
    assert [envelope.rcpt_tos for envelope in server.stored] == [[email]]


async def test_duplicate_queue_messages_send_once(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    mailbox: Mailbox,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    email = new_address()
    user_id = users.add(email)
    async with serve(settings, workers=False) as http:
        notification_id = await announce(http, user_id)
    row = await db.fetchrow(
        """SELECT id, type, payload, occurred_at FROM notifications.outbox
           WHERE payload->>'notification_id' = $1""",
        notification_id,
    )
    message = {
        "id": str(row["id"]),
        "type": row["type"],
        "source": "notifications",
        "payload": json.dumps(json.loads(row["payload"])),
        "occurred_at": row["occurred_at"].isoformat(),
    }
    await redis.xadd(settings.queue_stream, message)  # type: ignore[arg-type]
    await redis.xadd(settings.queue_stream, message)  # type: ignore[arg-type]

    # The relay publishes the outbox row too: three messages, one notification.
    async with serve(settings, reclaim_idle_s=0.2) as http:
        body = await until_settled(http, notification_id)
        [*_, (last_id, _)] = await eventually(
            lambda: redis.xrange(settings.queue_stream),
            until=lambda messages: len(messages) == 3,
            what="the relay to publish the queued notification",
        )
        await queue_drained(redis, settings.queue_stream, last_id)

    assert body["status"] == "sent"
    assert statuses(body) == [("queued", None), ("sent", 1)]
    assert len(mailbox.messages(to=email)) == 1


async def test_sender_stopped_mid_retry_is_taken_over_by_another(
    settings: Settings, serve: Serve, users: UsersStandIn, spare_sink: SinkProcess
):
    email = new_address()
    user_id = users.add(email)
    replica = {"smtp_port": spare_sink.smtp_port, "reclaim_idle_s": 0.2}

    async with serve(settings, backoff_s=1.0, **replica) as first:
        notification_id = await announce(first, user_id)
        await until_history(first, notification_id, 2)
    # The first replica stopped while waiting to retry: its message is pending.
    spare_sink.start()
    async with serve(settings, **replica) as second:
        body = await until_settled(second, notification_id)

    assert body["status"] == "sent"
    assert statuses(body) == [("queued", None), ("retrying", 1), ("sent", 2)]
    with Mailbox(spare_sink.url) as mailbox:
        assert len(mailbox.messages(to=email)) == 1


async def test_sender_that_vanished_mid_send_is_not_sent_again(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    mailbox: Mailbox,
    db: asyncpg.Connection,
):
    email = new_address()
    user_id = users.add(email)
    async with serve(settings, workers=False) as http:
        notification_id = await announce(http, user_id)
    await db.execute(
        """UPDATE notifications.notifications SET status = 'sending', attempts = 1,
               attempt_started_at = now() - interval '1 hour'
           WHERE id = $1""",
        notification_id,
    )

    async with serve(settings) as http:
        body = await until_settled(http, notification_id)

    assert body["status"] == "failed"
    assert statuses(body) == [("queued", None), ("failed", 1)]
    assert body["failed_reason"] == (
        "the worker making attempt 1 stopped before recording its outcome; not "
        "sent again, as the email may have been delivered"
    )
    assert mailbox.messages(to=email) == []


async def test_queue_message_naming_no_notification_is_dropped(
    settings: Settings, serve: Serve, redis: aioredis.Redis, caplog: Any
):
    missing = str(uuid.uuid4())
    await redis.xadd(
        settings.queue_stream,
        {
            "id": str(uuid.uuid4()),
            "type": "notification.queued",
            "source": "notifications",
            "payload": json.dumps({"notification_id": missing}),
            "occurred_at": "2026-01-01T00:00:00+00:00",
        },
    )
    last_id = await redis.xadd(settings.queue_stream, {"garbage": "yes"})

    async with serve(settings):
        await queue_drained(redis, settings.queue_stream, last_id)

    logged = [record.getMessage() for record in caplog.records]
    assert any(
        f"names notification {missing}, which does not exist" in line for line in logged
    )
    assert any(
        f"queue message {last_id} of {settings.queue_stream} names no notification"
        in line
        for line in logged
    )


async def test_sender_group_is_named_senders(
    settings: Settings, serve: Serve, redis: aioredis.Redis
):
    async with serve(settings):
        groups = await eventually(
            lambda: redis.xinfo_groups(settings.queue_stream),
            until=bool,
            what="the senders' consumer group",
        )

    assert [group["name"] for group in groups] == [GROUP] == ["senders"]
