"""The progress projection fed by the learning service's events, and the progress
routes built on it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from programs_testkit import ADMIN, Others, as_user, handled, publish

from services.common.events import Event
from services.programs import progress
from services.programs.payloads import BadPayload
from services.programs.progress import summarize

pytestmark = pytest.mark.anyio

CreateProgram = Callable[..., Awaitable[dict[str, Any]]]
Assign = Callable[..., Awaitable[httpx.Response]]

NOW = datetime(2030, 1, 1, tzinfo=UTC)


async def standing(
    db: asyncpg.Connection, user_id: uuid.UUID, course_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "SELECT enrollment_id, progress, completed_at FROM programs.course_progress "
        "WHERE user_id = $1 AND course_id = $2",
        user_id,
        course_id,
    )
    return None if row is None else dict(row)


async def learn(
    redis: aioredis.Redis,
    db: asyncpg.Connection,
    type_: str,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
    **fields: Any,
) -> str:
    """Publish one of learning's events about an enrollment; wait until handled."""
    payload = {
        "enrollment_id": str(fields.pop("enrollment_id", uuid.uuid4())),
        "user_id": str(user_id),
        "course_id": str(course_id),
        **fields,
    }
    event_id = await publish(redis, type_, payload)
    await handled(db, event_id)
    return event_id


async def complete(
    redis: aioredis.Redis,
    db: asyncpg.Connection,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
    enrollment_id: uuid.UUID | None = None,
) -> None:
    await learn(
        redis,
        db,
        "course.completed",
        user_id,
        course_id,
        enrollment_id=enrollment_id or uuid.uuid4(),
        course_title="Anything",
        completed_at="2029-12-24T18:00:00Z",
    )


# -- the projection ----------------------------------------------------------------


async def test_enrollment_created_starts_at_zero(
    client: httpx.AsyncClient, redis: aioredis.Redis, db: asyncpg.Connection
):
    user, course, enrollment = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    await learn(redis, db, "enrollment.created", user, course, enrollment_id=enrollment)

    assert await standing(db, user, course) == {
        "enrollment_id": enrollment,
        "progress": 0,
        "completed_at": None,
    }


async def test_enrollment_progressed_only_ever_grows(
    client: httpx.AsyncClient, redis: aioredis.Redis, db: asyncpg.Connection
):
    user, course = uuid.uuid4(), uuid.uuid4()

    await learn(redis, db, "enrollment.progressed", user, course, progress=80)
    await learn(redis, db, "enrollment.progressed", user, course, progress=40)

    found = await standing(db, user, course)
    assert found is not None
    assert found["progress"] == 80
    assert found["completed_at"] is None


async def test_course_completed_before_enrollment_created_stays_done(
    client: httpx.AsyncClient, redis: aioredis.Redis, db: asyncpg.Connection
):
    user, course, enrollment = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    await complete(redis, db, user, course, enrollment)
    await learn(redis, db, "enrollment.created", user, course, enrollment_id=enrollment)
    await learn(
        redis,
        db,
        "enrollment.progressed",
        user,
        course,
        enrollment_id=enrollment,
        progress=30,
    )

    assert await standing(db, user, course) == {
        "enrollment_id": enrollment,
        "progress": 100,
        "completed_at": datetime(2029, 12, 24, 18, tzinfo=UTC),
    }


async def test_course_completed_twice_keeps_the_first_time(
    client: httpx.AsyncClient, redis: aioredis.Redis, db: asyncpg.Connection
):
    user, course = uuid.uuid4(), uuid.uuid4()
    await complete(redis, db, user, course)

    await learn(
        redis,
        db,
        "course.completed",
        user,
        course,
        completed_at="2030-02-02T00:00:00Z",
    )

    found = await standing(db, user, course)
    assert found is not None
    assert found["completed_at"] == datetime(2029, 12, 24, 18, tzinfo=UTC)


async def test_course_completed_without_a_time_uses_when_it_happened(
    client: httpx.AsyncClient, redis: aioredis.Redis, db: asyncpg.Connection
):
    user, course = uuid.uuid4(), uuid.uuid4()
    before = datetime.now(UTC)

    await learn(redis, db, "course.completed", user, course)

    found = await standing(db, user, course)
    assert found is not None
    assert before <= found["completed_at"] <= datetime.now(UTC)


async def test_redelivered_event_is_applied_once(
    client: httpx.AsyncClient, redis: aioredis.Redis, db: asyncpg.Connection
):
    user, course = uuid.uuid4(), uuid.uuid4()
    event_id = await learn(
        redis, db, "enrollment.progressed", user, course, progress=60
    )
    # Something later lowers it (only a test can); a redelivered copy of the
    # event must not be applied again.
    await db.execute(
        "UPDATE programs.course_progress SET progress = 10 WHERE user_id = $1", user
    )

    again = await publish(
        redis,
        "enrollment.progressed",
        {"enrollment_id": str(uuid.uuid4()), "user_id": str(user),
         "course_id": str(course), "progress": 60},
        event_id=event_id,
    )  # fmt: skip
    marker = await learn(
        redis, db, "enrollment.progressed", user, uuid.uuid4(), progress=1
    )

    assert again == event_id
    assert marker != event_id
    found = await standing(db, user, course)
    assert found is not None
    assert found["progress"] == 10


@pytest.mark.parametrize(
    ("handler", "payload", "message"),
    [
        (
            progress.on_enrollment_created,
            {"course_id": "c"},
            "user_id=None is not a uuid",
        ),
        (
            progress.on_enrollment_created,
            {"user_id": str(uuid.UUID(int=1)), "course_id": "nope"},
            "course_id='nope' is not a uuid",
        ),
        (
            progress.on_enrollment_progressed,
            {"user_id": str(uuid.UUID(int=1)), "course_id": str(uuid.UUID(int=2)),
             "progress": 101},
            "progress=101 is not a number from 0 to 100",
        ),
        (
            progress.on_enrollment_progressed,
            {"user_id": str(uuid.UUID(int=1)), "course_id": str(uuid.UUID(int=2)),
             "progress": True},
            "progress=True is not a number from 0 to 100",
        ),
        (
            progress.on_course_completed,
            {"user_id": str(uuid.UUID(int=1)), "course_id": str(uuid.UUID(int=2)),
             "completed_at": "2030-01-01T00:00:00"},
            "completed_at='2030-01-01T00:00:00' is not an RFC 3339 time with an "
            "offset",
        ),
        (
            progress.on_course_completed,
            {"user_id": str(uuid.UUID(int=1)), "course_id": str(uuid.UUID(int=2)),
             "completed_at": "yesterday"},
            "completed_at='yesterday' is not an RFC 3339 time with an offset",
        ),
    ],
)  # fmt: skip
async def test_handler_bad_payload_names_event_and_field(
    db: asyncpg.Connection,
    handler: Callable[[asyncpg.Connection, Event], Awaitable[None]],
    payload: dict[str, Any],
    message: str,
):
    event = Event("e-1", "some.event", "learning", payload, NOW.isoformat())

    with pytest.raises(BadPayload) as raised:
        async with db.transaction():
            await handler(db, event)

    assert str(raised.value) == f"some.event event e-1: {message}"


# -- the numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "done", "due_at", "percent", "overdue"),
    [
        (2, 1, None, 50, False),
        (3, 2, None, 66, False),
        (3, 3, NOW - timedelta(days=1), 100, False),
        (3, 2, NOW - timedelta(seconds=1), 66, True),
        (3, 0, NOW + timedelta(seconds=1), 0, False),
        (0, 0, NOW - timedelta(days=1), 100, False),
    ],
)
def test_summarize_percent_rounds_down_and_overdue_needs_undone_courses(
    total: int, done: int, due_at: datetime | None, percent: int, overdue: bool
):
    summary = summarize(total, done, due_at, NOW)

    assert (summary.courses_total, summary.courses_done) == (total, done)
    assert (summary.percent, summary.overdue) == (percent, overdue)


# -- the routes --------------------------------------------------------------------


async def test_program_progress_counts_courses_done_per_user(
    client: httpx.AsyncClient,
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    first, second, elsewhere = (others.add_course() for _ in range(3))
    program = await create_program([first, second], title="Two courses")
    ahead, behind, late, done = (others.add_user() for _ in range(4))
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    future = "2099-01-01T00:00:00Z"
    await assign(program["id"], [ahead, behind], due_at=future)
    await assign(program["id"], [late, done], due_at=past)
    await complete(redis, db, ahead, first)
    await learn(redis, db, "enrollment.progressed", behind, first, progress=90)
    await complete(redis, db, behind, elsewhere)
    await complete(redis, db, late, second)
    await complete(redis, db, done, first)
    await complete(redis, db, done, second)

    response = await client.get(
        f"/api/v1/programs/{program['id']}/progress", headers=ADMIN
    )

    assert response.status_code == 200
    body = response.json()
    assert body["program_id"] == program["id"]
    assert body["title"] == "Two courses"
    assert body["total"] == 4
    rows = {item["user_id"]: item for item in body["items"]}
    assert set(rows) == {str(u) for u in (ahead, behind, late, done)}
    assert rows[str(ahead)] == {
        "user_id": str(ahead),
        "due_at": "2099-01-01T00:00:00Z",
        "courses_total": 2,
        "courses_done": 1,
        "percent": 50,
        "overdue": False,
    }
    assert (rows[str(behind)]["courses_done"], rows[str(behind)]["percent"]) == (0, 0)
    assert rows[str(late)]["courses_done"] == 1
    assert rows[str(late)]["overdue"] is True
    assert rows[str(done)]["percent"] == 100
    assert rows[str(done)]["overdue"] is False


async def test_program_progress_pages(
    client: httpx.AsyncClient,
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
):
    program = await create_program([others.add_course()])
    users = [others.add_user() for _ in range(3)]
    for user in users:
        await assign(program["id"], [user])

    response = await client.get(
        f"/api/v1/programs/{program['id']}/progress",
        params={"limit": 1, "offset": 1},
        headers=ADMIN,
    )

    assert response.status_code == 200
    assert response.json()["total"] == 3
    assert [i["user_id"] for i in response.json()["items"]] == [str(users[1])]


async def test_program_progress_of_empty_program_has_no_items(
    client: httpx.AsyncClient, create_program: CreateProgram
):
    program = await create_program()

    response = await client.get(
        f"/api/v1/programs/{program['id']}/progress", headers=ADMIN
    )

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["total"] == 0


async def test_program_progress_of_unknown_program_is_404(client: httpx.AsyncClient):
    program_id = uuid.uuid4()

    response = await client.get(
        f"/api/v1/programs/{program_id}/progress", headers=ADMIN
    )

    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no program {program_id}"


async def test_program_progress_as_learner_is_403(
    client: httpx.AsyncClient, create_program: CreateProgram
):
    program = await create_program()

    response = await client.get(
        f"/api/v1/programs/{program['id']}/progress", headers=as_user(uuid.uuid4())
    )

    assert response.status_code == 403


async def test_my_programs_lists_the_callers_with_progress(
    client: httpx.AsyncClient,
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    courses = [others.add_course() for _ in range(3)]
    older = await create_program(courses, title="Three courses")
    newer = await create_program(courses[:1], title="One course")
    me, someone = others.add_user(), others.add_user()
    await assign(older["id"], [me], due_at="2000-01-01T00:00:00Z")
    await assign(newer["id"], [me, someone])
    await complete(redis, db, me, courses[0])

    response = await client.get("/api/v1/programs/me", headers=as_user(me))

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "program_id": older["id"],
                "title": "Three courses",
                "onboarding": False,
                "due_at": "2000-01-01T00:00:00Z",
                "courses_total": 3,
                "courses_done": 1,
                "percent": 33,
                "overdue": True,
            },
            {
                "program_id": newer["id"],
                "title": "One course",
                "onboarding": False,
                "due_at": None,
                "courses_total": 1,
                "courses_done": 1,
                "percent": 100,
                "overdue": False,
            },
        ]
    }


async def test_my_programs_without_any_is_empty(client: httpx.AsyncClient):
    response = await client.get("/api/v1/programs/me", headers=as_user(uuid.uuid4()))

    assert response.status_code == 200
    assert response.json() == {"items": []}


async def test_my_programs_without_identity_is_401(client: httpx.AsyncClient):
    response = await client.get("/api/v1/programs/me")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
