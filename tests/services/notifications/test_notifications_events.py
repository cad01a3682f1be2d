"""Domain events queue notifications: one per event and template, even when an
event is delivered twice, for recipients projected or looked up."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from notifications_testkit import (
    Serve,
    UsersStandIn,
    as_user,
    eventually,
    new_address,
)

from harness.mailbox import Mailbox
from services.common.events import Event
from services.common.internal import InternalClient
from services.notifications.people import Directory
from services.notifications.settings import Settings
from services.notifications.triggers import Triggers

pytestmark = pytest.mark.anyio


def event(type_: str, **payload: Any) -> Event:
    return Event(
        id=str(uuid.uuid4()),
        type=type_,
        source="test",
        payload=payload,
        occurred_at=datetime.now(UTC).isoformat(),
    )


def registered(email: str, full_name: str = "Ann Lee") -> Event:
    return event(
        "user.registered", user_id=str(uuid.uuid4()), email=email, full_name=full_name
    )


async def publish(redis: aioredis.Redis, stream: str, *events: Event) -> str:
    """Add ``events`` to ``stream``; returns the last message's id."""
    last = ""
    for one in events:
        last = await redis.xadd(stream, one.to_fields())  # type: ignore[arg-type]
    return last


async def handled(redis: aioredis.Redis, stream: str, last_id: str) -> None:
    """Wait until the notifications group has read and acknowledged up to
    ``last_id``."""

    async def group() -> dict[str, Any]:
        infos = await redis.xinfo_groups(stream)
        return next(dict(i) for i in infos if i["name"] == "notifications")

    await eventually(
        group,
        until=lambda info: (
            info["last-delivered-id"] == last_id and info["pending"] == 0
        ),
        what=f"the notifications group to handle {stream} up to {last_id}",
    )


async def inbox(http: httpx.AsyncClient, user_id: str) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/notifications/me", headers=as_user(user_id))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def sent_inbox(http: httpx.AsyncClient, user_id: str) -> list[dict[str, Any]]:
    return await eventually(
        lambda: inbox(http, user_id),
        until=lambda items: bool(items) and all(i["status"] == "sent" for i in items),
        what=f"the notifications of user {user_id} to be sent",
    )


async def test_registration_sends_one_welcome_when_delivered_twice(
    settings: Settings, serve: Serve, redis: aioredis.Redis, mailbox: Mailbox
):
    email = new_address()
    welcome = registered(email, "Ann Lee")
    user_id = welcome.payload["user_id"]

    async with serve(settings) as http:
        last_id = await publish(redis, settings.events_stream, welcome, welcome)
        await handled(redis, settings.events_stream, last_id)
        [item] = await sent_inbox(http, user_id)

    # Asked once the notification is settled, so that a repeat would show.
    mails = mailbox.messages(to=email)
    assert len(mails) == 1, mails
    [mail] = mails
    assert item["template"] == "welcome"
    assert item["subject"] == "Welcome to Campus, Ann Lee"
    assert mail.subject == "Welcome to Campus, Ann Lee"
    assert mail.rcpt_tos == (email,)
    assert mail.to == f"Ann Lee <{email}>"
    assert mail.body.startswith(
        f"Hello Ann Lee,\n\nyour Campus account is ready. Sign in as {email} "
    )


async def test_same_event_handled_twice_queues_one_notification(
    settings: Settings, test_database: str, users: UsersStandIn, db: asyncpg.Connection
):
    # Beneath the consumer's own record of handled events: the dedupe key.
    welcome = registered(new_address())
    triggers = Triggers(
        Directory(InternalClient.from_setting("users", users.url)),
        settings.queue_stream,
    )
    for _ in range(2):
        async with db.transaction():
            await triggers.on_event(db, welcome)
    await triggers.directory.users.aclose()

    count = await db.fetchval(
        "SELECT count(*) FROM notifications.notifications WHERE user_id = $1",
        uuid.UUID(welcome.payload["user_id"]),
    )
    assert count == 1


async def test_program_assignment_looks_up_an_unprojected_user(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    redis: aioredis.Redis,
    mailbox: Mailbox,
):
    email = new_address()
    user_id = users.add(email, "Bo Chen")
    assigned = event(
        "program.assigned",
        program_id=str(uuid.uuid4()),
        program_title="Onboarding",
        user_id=user_id,
        course_ids=[str(uuid.uuid4()), str(uuid.uuid4())],
        due_at="2030-01-31T00:00:00+00:00",
    )
    again = event(
        "program.assigned",
        program_id=str(uuid.uuid4()),
        program_title="Security basics",
        user_id=user_id,
        course_ids=[str(uuid.uuid4())],
        due_at=None,
    )

    async with serve(settings) as http:
        await publish(redis, settings.events_stream, assigned, again)
        items = await eventually(
            lambda: sent_inbox(http, user_id),
            until=lambda items: len(items) == 2,
            what="two program notifications",
        )

    mails = mailbox.messages(to=email)
    assert {item["template"] for item in items} == {"program_assigned"}
    assert sorted(mail.subject for mail in mails) == [
        "New program for you: Onboarding",
        "New program for you: Security basics",
    ]
    by_subject = {mail.subject: mail for mail in mails}
    assert by_subject["New program for you: Onboarding"].body.startswith(
        "Hello Bo Chen,\n\nyou have been assigned the program \u201cOnboarding\u201d. "
        "It has 2 courses, and you are enrolled in each.\n\n"
        "Please complete it by 2030-01-31T00:00:00+00:00.\n"
    )
    assert by_subject["New program for you: Security basics"].body.startswith(
        "Hello Bo Chen,\n\nyou have been assigned the program \u201cSecurity "
        "basics\u201d. It has 1 course, and you are enrolled in each.\n\n"
        "It has no due date.\n"
    )
    assert users.asked == [user_id]  # remembered after the first look-up


async def test_certificate_email_carries_the_code_and_verify_path(
    settings: Settings,
    serve: Serve,
    redis: aioredis.Redis,
    mailbox: Mailbox,
):
    email = new_address()
    welcome = registered(email, "Cy Diaz")
    user_id = welcome.payload["user_id"]
    issued = event(
        "certificate.issued",
        certificate_id=str(uuid.uuid4()),
        code="CERT-7Q2X",
        user_id=user_id,
        user_name="Cy Diaz",
        course_id=str(uuid.uuid4()),
        course_title="Python for analysts",
        issued_at=datetime.now(UTC).isoformat(),
    )

    async with serve(settings) as http:
        await publish(redis, settings.events_stream, welcome, issued)
        await eventually(
            lambda: sent_inbox(http, user_id),
            until=lambda items: len(items) == 2,
            what="a welcome and a certificate notification",
        )

    mails = mailbox.messages(to=email)
    assert sorted(mail.subject for mail in mails) == [
        "Welcome to Campus, Cy Diaz",
        "Your certificate for Python for analysts",
    ]
    [certificate] = [mail for mail in mails if mail.subject.startswith("Your")]
    assert "Your certificate's verification code is CERT-7Q2X." in certificate.body
    assert "/api/v1/certificates/CERT-7Q2X/verify" in certificate.body


async def test_events_that_cannot_make_a_notification_are_logged_and_dropped(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
):
    known = users.add(new_address())
    stranger = str(uuid.uuid4())
    no_code = event("certificate.issued", user_id=known, course_title="Go")
    unknown_user = event("program.assigned", user_id=stranger, program_title="X")
    no_user = event("program.assigned", program_title="X")
    bare_registration = event("user.registered", user_id=str(uuid.uuid4()))
    caplog.set_level(logging.ERROR, logger="services.notifications.triggers")

    async with serve(settings) as http:
        last_id = await publish(
            redis, settings.events_stream, no_code, unknown_user, no_user,
            bare_registration,
        )  # fmt: skip
        await handled(redis, settings.events_stream, last_id)
        assert await inbox(http, known) == []
        assert await inbox(http, stranger) == []

    logged = [record.getMessage() for record in caplog.records]
    assert logged == [
        f"event {no_code.id} (certificate.issued) makes no certificate_issued "
        "notification: the certificate_issued template cannot be rendered: "
        "code is missing",
        f"event {unknown_user.id} (program.assigned) is for user {stranger}, whom "
        "the users service does not know; no notification",
        f"event {no_user.id} (program.assigned) names no user; no notification",
        f"event {bare_registration.id} (user.registered) lacks the email or full "
        f"name of user {bare_registration.payload['user_id']}; no notification",
    ]


async def test_event_waits_while_users_service_fails(
    settings: Settings,
    serve: Serve,
    users: UsersStandIn,
    redis: aioredis.Redis,
):
    user_id = users.add(new_address())
    users.failing = True
    assigned = event("program.assigned", user_id=user_id, program_title="Later")

    async with serve(settings) as http:
        await publish(redis, settings.events_stream, assigned)
        await eventually(
            lambda: redis.xpending(settings.events_stream, "notifications"),
            until=lambda pending: pending["pending"] == 1 and len(users.asked) > 0,
            what="the event to wait, unacknowledged, for the users service",
        )
        assert await inbox(http, user_id) == []

    assert users.asked[0] == user_id
