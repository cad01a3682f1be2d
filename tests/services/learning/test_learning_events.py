"""The events the service publishes with each change, and what it does with
``program.assigned``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
import redis
import redis.asyncio as aioredis
from learning_testkit import Directory, new_learner, outbox, user_id_of

from harness.eventually import eventually
from services.common.events import STREAM, Event, EventConsumer
from services.learning.assignments import HANDLERS, on_program_assigned
from services.learning.settings import Settings

pytestmark = pytest.mark.anyio

Factory = Callable[..., Awaitable[dict[str, Any]]]


def assigned(user_id: str, course_ids: list[Any], /, **changes: Any) -> Event:
    return Event(
        id=str(uuid.uuid4()),
        type="program.assigned",
        source="programs",
        payload={
            "program_id": str(uuid.uuid4()),
            "program_title": "Onboarding",
            "user_id": user_id,
            "course_ids": course_ids,
            "due_at": None,
        }
        | changes,
        occurred_at=datetime.now(UTC).isoformat(),
    )


async def handle(db: asyncpg.Connection, event: Event) -> None:
    async with db.transaction():
        await on_program_assigned(db, event)


async def enrolled_courses(db: asyncpg.Connection, user_id: str) -> set[str]:
    rows = await db.fetch(
        "SELECT course_id FROM learning.enrollments WHERE user_id = $1",
        uuid.UUID(user_id),
    )
    return {str(row["course_id"]) for row in rows}


async def test_each_change_writes_its_event_with_the_documented_payload(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
    db: asyncpg.Connection,
):
    course = await make_course(title="Event sourcing", lessons=2)
    first, second = (lesson["id"] for lesson in course["lessons"])
    learner = directory.add("Eve Entwistle")
    user_id = user_id_of(learner)
    enrollment = await enroll(course["id"], learner)
    path = f"/api/v1/enrollments/{enrollment['id']}"
    await client.post(
        f"{path}/progress", json={"completed_lessons": [first]}, headers=learner
    )
    await client.post(
        f"{path}/progress", json={"completed_lessons": [second]}, headers=learner
    )
    done = (await client.post(f"{path}/complete", headers=learner)).json()

    ids = {
        "enrollment_id": enrollment["id"],
        "user_id": user_id,
        "course_id": course["id"],
    }
    assert await outbox(db, "enrollment.created", enrollment_id=enrollment["id"]) == [
        ids
    ]
    assert await outbox(
        db, "enrollment.progressed", enrollment_id=enrollment["id"]
    ) == [ids | {"progress": 50}, ids | {"progress": 100}]
    [completed] = await outbox(db, "course.completed", enrollment_id=enrollment["id"])
    assert completed == ids | {
        "course_title": "Event sourcing",
        "completed_at": completed["completed_at"],
    }
    assert datetime.fromisoformat(completed["completed_at"]) == datetime.fromisoformat(
        done["enrollment"]["completed_at"]
    )
    certificate = done["certificate"]
    [issued] = await outbox(db, "certificate.issued", user_id=user_id)
    assert issued == {
        "certificate_id": certificate["id"],
        "code": certificate["code"],
        "user_id": user_id,
        "user_name": "Eve Entwistle",
        "course_id": course["id"],
        "course_title": "Event sourcing",
        "issued_at": issued["issued_at"],
    }
    assert datetime.fromisoformat(issued["issued_at"]) == datetime.fromisoformat(
        certificate["issued_at"]
    )


async def test_refused_changes_write_no_event(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    db: asyncpg.Connection,
):
    course = await make_course(lessons=2)
    learner = new_learner()
    enrollment = await enroll(course["id"], learner)

    again = await client.post(
        f"/api/v1/courses/{course['id']}/enrollments", headers=learner
    )
    foreign = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/progress",
        json={"completed_lessons": [str(uuid.uuid4())]},
        headers=learner,
    )

    assert (again.status_code, foreign.status_code) == (409, 422)
    user_id = user_id_of(learner)
    assert len(await outbox(db, "enrollment.created", user_id=user_id)) == 1
    assert await outbox(db, "enrollment.progressed", user_id=user_id) == []


async def test_program_assigned_enrolls_in_the_courses_that_exist(
    make_course: Factory, db: asyncpg.Connection
):
    first, second = await make_course(), await make_course()
    missing = str(uuid.uuid4())
    user_id = str(uuid.uuid4())

    await handle(db, assigned(user_id, [first["id"], missing, second["id"]]))

    assert await enrolled_courses(db, user_id) == {first["id"], second["id"]}
    created = await outbox(db, "enrollment.created", user_id=user_id)
    assert [event["course_id"] for event in created] == [first["id"], second["id"]]
    statuses = await db.fetch(
        "SELECT status FROM learning.enrollments WHERE user_id = $1",
        uuid.UUID(user_id),
    )
    assert [row["status"] for row in statuses] == ["enrolled", "enrolled"]


async def test_program_assigned_skips_courses_already_enrolled_in(
    make_course: Factory, enroll: Factory, db: asyncpg.Connection
):
    mine, new = await make_course(), await make_course()
    learner = new_learner()
    user_id = user_id_of(learner)
    await enroll(mine["id"], learner)

    await handle(db, assigned(user_id, [mine["id"], new["id"], new["id"]]))
    await handle(db, assigned(user_id, [mine["id"], new["id"]]))

    assert await enrolled_courses(db, user_id) == {mine["id"], new["id"]}
    created = await outbox(db, "enrollment.created", user_id=user_id)
    assert [event["course_id"] for event in created] == [mine["id"], new["id"]]


@pytest.mark.parametrize(
    "payload",
    [
        {"user_id": "someone"},
        {"course_ids": "not-a-list"},
        {"course_ids": ["not-an-id"]},
        {"user_id": None},
    ],
)
async def test_program_assigned_with_malformed_payload_is_skipped_and_logged(
    make_course: Factory,
    db: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
    payload: dict[str, Any],
):
    course = await make_course()
    user_id = str(uuid.uuid4())
    event = assigned(user_id, [course["id"]], **payload)

    await handle(db, event)

    assert await enrolled_courses(db, user_id) == set()
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(
        f"skipped program.assigned event {event.id}: its payload is malformed: "
    )


async def test_program_assigned_without_course_ids_is_skipped(
    db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
):
    event = assigned(str(uuid.uuid4()), [])
    del event.payload["course_ids"]  # type: ignore[attr-defined]

    await handle(db, event)

    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "KeyError('course_ids')" in record.getMessage()


@pytest.fixture
async def private_stream(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A Redis client and a stream name no one else uses."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    stream = f"test:learning:{uuid.uuid4().hex}"
    yield client, stream
    await client.delete(stream)
    await client.aclose()


async def test_consumer_applies_a_redelivered_program_assigned_once(
    make_course: Factory,
    test_database: str,
    db: asyncpg.Connection,
    private_stream: tuple[aioredis.Redis, str],
):
    client, stream = private_stream
    course = await make_course()
    user_id = str(uuid.uuid4())
    fields: dict[Any, Any] = assigned(user_id, [course["id"]]).to_fields()
    await client.xadd(stream, fields)
    await client.xadd(stream, fields)
    pool = await asyncpg.create_pool(test_database, min_size=1, max_size=2)
    try:
        consumer = EventConsumer(
            pool, client, "learning", "learning", HANDLERS, stream=stream, block_ms=10
        )
        await consumer.ensure_group()

        handled = await consumer.consume_once()
    finally:
        await pool.close()

    assert handled == 2
    assert await enrolled_courses(db, user_id) == {course["id"]}
    assert len(await outbox(db, "enrollment.created", user_id=user_id)) == 1


async def test_event_workers_relay_the_outbox_to_the_stream(
    serve: Any,
    settings: Settings,
    make_course: Factory,
    redis_url: str,
    db: asyncpg.Connection,
):
    course = await make_course()
    with redis.Redis.from_url(redis_url, decode_responses=True) as stream:
        newest = stream.xrevrange(STREAM, count=1)
        after = newest[0][0] if newest else "0-0"

        def published(event_id: str) -> list[dict[str, str]]:
            entries = stream.xrange(STREAM, min=after)
            return [fields for _, fields in entries if fields["id"] == event_id]

        async with serve(settings, event_workers=True) as http:
            response = await http.post(
                f"/api/v1/courses/{course['id']}/enrollments", headers=new_learner()
            )
            assert response.status_code == 201
            event_id = str(
                await db.fetchval(
                    "SELECT id FROM learning.outbox "
                    "WHERE payload->>'enrollment_id' = $1",
                    response.json()["id"],
                )
            )
            # Polled in a thread: this event loop runs the relay meanwhile.
            found = await anyio.to_thread.run_sync(
                lambda: eventually(
                    lambda: published(event_id),
                    what=f"event {event_id} on the stream {STREAM}",
                )
            )

    [fields] = found
    assert Event.from_fields(fields).payload == {
        "enrollment_id": response.json()["id"],
        "user_id": response.json()["user_id"],
        "course_id": course["id"],
    }
    assert fields["type"] == "enrollment.created"
    assert fields["source"] == "learning"
    assert await db.fetchval(
        "SELECT published_at IS NOT NULL FROM learning.outbox WHERE id = $1",
        uuid.UUID(event_id),
    )
