"""Assigning users to programs, adding courses to them, and the events both
publish."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from programs_testkit import ADMIN, CLOSED_URL, Others, as_user, outbox, wait_until

from services.common.events import STREAM
from services.programs.app import create_app
from services.programs.settings import Settings

pytestmark = pytest.mark.anyio

CreateProgram = Callable[..., Awaitable[dict[str, Any]]]
Assign = Callable[..., Awaitable[httpx.Response]]


async def test_assign_answers_201_and_publishes_program_assigned(
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    db: asyncpg.Connection,
):
    courses = [others.add_course(), others.add_course()]
    program = await create_program(courses, title="Forklift licence")
    users = [others.add_user(), others.add_user()]

    response = await assign(program["id"], users, due_at="2031-05-01T12:00:00+02:00")

    assert response.status_code == 201
    assert response.json() == {
        "program_id": program["id"],
        "assigned": [str(u) for u in users],
        "already_assigned": [],
    }
    for user in users:
        assert await outbox(db, user) == [
            {
                "program_id": program["id"],
                "program_title": "Forklift licence",
                "user_id": str(user),
                "course_ids": [str(c) for c in courses],
                "due_at": "2031-05-01T10:00:00+00:00",
            }
        ]
    due = await db.fetch(
        "SELECT due_at FROM programs.assignments WHERE program_id = $1",
        uuid.UUID(program["id"]),
    )
    assert {row["due_at"].isoformat() for row in due} == {"2031-05-01T10:00:00+00:00"}


async def test_assign_relays_the_event_to_the_stream(
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    redis: aioredis.Redis,
):
    program = await create_program([others.add_course()])
    user = others.add_user()

    response = await assign(program["id"], [user])

    assert response.status_code == 201

    async def assigned_events() -> list[dict[str, str]]:
        entries = await redis.xrange(STREAM)
        return [
            fields
            for _, fields in entries
            if fields["type"] == "program.assigned"
            and json.loads(fields["payload"])["user_id"] == str(user)
        ]

    events = await wait_until(
        assigned_events, lambda found: found, what="program.assigned on the stream"
    )
    assert len(events) == 1
    assert events[0]["source"] == "programs"
    assert json.loads(events[0]["payload"])["due_at"] is None


async def test_assign_again_publishes_nothing_and_moves_the_due_date(
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    db: asyncpg.Connection,
):
    program = await create_program([others.add_course()])
    first, second = others.add_user(), others.add_user()
    assert (
        await assign(program["id"], [first], due_at="2030-01-01T00:00:00Z")
    ).status_code == 201

    response = await assign(
        program["id"], [second, first], due_at="2032-01-01T00:00:00Z"
    )

    assert response.status_code == 201
    assert response.json()["assigned"] == [str(second)]
    assert response.json()["already_assigned"] == [str(first)]
    assert len(await outbox(db, first)) == 1
    assert len(await outbox(db, second)) == 1
    due = await db.fetchval(
        "SELECT due_at FROM programs.assignments WHERE program_id = $1 "
        "AND user_id = $2",
        uuid.UUID(program["id"]),
        first,
    )
    assert due.isoformat() == "2032-01-01T00:00:00+00:00"


async def test_assign_again_without_due_date_keeps_it(
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    db: asyncpg.Connection,
):
    program = await create_program()
    user = others.add_user()
    await assign(program["id"], [user], due_at="2030-06-01T00:00:00Z")

    response = await assign(program["id"], [user])

    assert response.status_code == 201
    assert response.json()["already_assigned"] == [str(user)]
    due = await db.fetchval(
        "SELECT due_at FROM programs.assignments WHERE user_id = $1", user
    )
    assert due.isoformat() == "2030-06-01T00:00:00+00:00"


async def test_assign_unknown_users_is_422_listing_them(
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    db: asyncpg.Connection,
):
    program = await create_program()
    known, unknown = others.add_user(), uuid.uuid4()

    response = await assign(program["id"], [known, unknown])

    assert response.status_code == 422
    assert response.json()["unknown_ids"] == [str(unknown)]
    assert response.json()["errors"] == [
        {"field": "user_ids", "message": f"no user has the id(s) {unknown}"}
    ]
    assert await outbox(db, known) == []
    assigned = await db.fetchval(
        "SELECT count(*) FROM programs.assignments WHERE program_id = $1",
        uuid.UUID(program["id"]),
    )
    assert assigned == 0


async def test_assign_to_unknown_program_is_404_asking_users_nothing(
    others: Others, assign: Assign
):
    program_id = uuid.uuid4()

    response = await assign(str(program_id), [others.add_user()])

    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no program {program_id}"
    assert others.users.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_ids": []}, "user_ids"),
        ({}, "user_ids"),
        ({"user_ids": ["nobody"]}, "user_ids.0"),
        ({"user_ids": [str(uuid.uuid4())], "due_at": "2030-01-01T00:00:00"}, "due_at"),
        ({"user_ids": [str(uuid.uuid4())], "due_at": "next week"}, "due_at"),
    ],
)
async def test_assign_bad_body_is_422_naming_the_field(
    client: httpx.AsyncClient,
    create_program: CreateProgram,
    body: dict[str, Any],
    field: str,
):
    program = await create_program()

    response = await client.post(
        f"/api/v1/programs/{program['id']}/assignments", json=body, headers=ADMIN
    )

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


TIME_FORMAT = "must be an RFC 3339 time with an offset, like 2030-01-31T17:00:00Z"


@pytest.mark.parametrize(
    ("due_at", "message"),
    [
        # A number is not read as seconds since 1970.
        (1900000000, TIME_FORMAT),
        ("1900000000", TIME_FORMAT),
        (True, TIME_FORMAT),
        ("next week", TIME_FORMAT),
        ("2030-01-01T00:00:00", f"{TIME_FORMAT}; it has no offset"),
        (
            "0001-01-01T00:00:00+14:00",
            "is out of range: in UTC it falls outside the years 1 to 9999",
        ),
        (
            "9999-12-31T23:59:59-14:00",
            "is out of range: in UTC it falls outside the years 1 to 9999",
        ),
    ],
)
async def test_assign_due_at_not_an_rfc3339_time_is_422_storing_nothing(
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    db: asyncpg.Connection,
    due_at: Any,
    message: str,
):
    program = await create_program()

    response = await assign(program["id"], [others.add_user()], due_at=due_at)

    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "due_at", "message": message}]
    assigned = await db.fetchval(
        "SELECT count(*) FROM programs.assignments WHERE program_id = $1",
        uuid.UUID(program["id"]),
    )
    assert assigned == 0


async def test_assign_repeated_user_is_422_naming_it(
    others: Others, create_program: CreateProgram, assign: Assign
):
    program = await create_program()
    user = others.add_user()

    response = await assign(program["id"], [user, user])

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "user_ids", "message": f"lists {user} more than once"}
    ]


async def test_assign_in_batches_of_ids(
    others: Others, create_program: CreateProgram, assign: Assign
):
    program = await create_program()
    users = [others.add_user() for _ in range(150)]

    response = await assign(program["id"], users)

    assert response.status_code == 201
    assert len(response.json()["assigned"]) == 150
    assert [len(call["ids"].split(",")) for call in others.users.calls] == [100, 50]


async def test_assign_when_users_is_unreachable_is_503_storing_nothing(
    settings: Settings, others: Others, db: asyncpg.Connection
):
    app = create_app(dataclasses.replace(settings, users_urls=(CLOSED_URL,)))
    user = others.add_user()

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://programs"
        ) as client,
    ):
        created = await client.post(
            "/api/v1/programs", json={"title": "Unreachable"}, headers=ADMIN
        )
        response = await client.post(
            f"/api/v1/programs/{created.json()['id']}/assignments",
            json={"user_ids": [str(user)]},
            headers=ADMIN,
        )

    assert response.status_code == 503
    assert response.json()["detail"] == (
        "the users service did not answer /internal/users; nothing was changed, "
        "try again later"
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM programs.assignments WHERE user_id = $1", user
        )
        == 0
    )
    assert await outbox(db, user) == []


async def test_assign_as_learner_is_403(
    client: httpx.AsyncClient, others: Others, create_program: CreateProgram
):
    program = await create_program()
    learner = others.add_user()

    response = await client.post(
        f"/api/v1/programs/{program['id']}/assignments",
        json={"user_ids": [str(learner)]},
        headers=as_user(learner, "learner"),
    )

    assert response.status_code == 403


# -- adding a course ---------------------------------------------------------------


async def test_add_course_appends_it_and_republishes_for_the_assigned(
    client: httpx.AsyncClient,
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    db: asyncpg.Connection,
):
    first = others.add_course()
    program = await create_program([first], title="Growing")
    dated, undated = others.add_user(), others.add_user()
    await assign(program["id"], [dated], due_at="2030-03-03T03:03:03Z")
    await assign(program["id"], [undated])
    added = others.add_course()

    response = await client.post(
        f"/api/v1/programs/{program['id']}/courses",
        json={"course_id": str(added)},
        headers=ADMIN,
    )

    assert response.status_code == 200
    assert response.json() == {**program, "course_ids": [str(first), str(added)]}
    dated_events, undated_events = await outbox(db, dated), await outbox(db, undated)
    assert [e["course_ids"] for e in dated_events] == [
        [str(first)],
        [str(first), str(added)],
    ]
    assert dated_events[1]["due_at"] == "2030-03-03T03:03:03+00:00"
    assert [e["course_ids"] for e in undated_events] == [
        [str(first)],
        [str(first), str(added)],
    ]
    assert undated_events[1]["due_at"] is None


async def test_add_course_then_assign_publishes_every_course(
    client: httpx.AsyncClient,
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    db: asyncpg.Connection,
):
    program = await create_program()
    course = others.add_course()
    await client.post(
        f"/api/v1/programs/{program['id']}/courses",
        json={"course_id": str(course)},
        headers=ADMIN,
    )
    user = others.add_user()

    await assign(program["id"], [user])

    assert [e["course_ids"] for e in await outbox(db, user)] == [[str(course)]]


async def test_add_course_already_in_program_is_409(
    client: httpx.AsyncClient, others: Others, create_program: CreateProgram
):
    course = others.add_course()
    program = await create_program([course])

    response = await client.post(
        f"/api/v1/programs/{program['id']}/courses",
        json={"course_id": str(course)},
        headers=ADMIN,
    )

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"course {course} is in program {program['id']} already"
    )
    assert others.learning.calls[-1]["ids"] == str(course)  # only at creation


async def test_add_unknown_course_is_422(
    client: httpx.AsyncClient, create_program: CreateProgram, db: asyncpg.Connection
):
    program = await create_program()
    unknown = uuid.uuid4()

    response = await client.post(
        f"/api/v1/programs/{program['id']}/courses",
        json={"course_id": str(unknown)},
        headers=ADMIN,
    )

    assert response.status_code == 422
    assert response.json()["unknown_ids"] == [str(unknown)]
    assert response.json()["errors"] == [
        {"field": "course_id", "message": f"no course has the id(s) {unknown}"}
    ]
    stored = await db.fetchval(
        "SELECT count(*) FROM programs.program_courses WHERE program_id = $1",
        uuid.UUID(program["id"]),
    )
    assert stored == 0


async def test_add_course_to_unknown_program_is_404(
    client: httpx.AsyncClient, others: Others
):
    program_id = uuid.uuid4()

    response = await client.post(
        f"/api/v1/programs/{program_id}/courses",
        json={"course_id": str(others.add_course())},
        headers=ADMIN,
    )

    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no program {program_id}"


async def test_add_course_when_learning_is_down_is_503(
    client: httpx.AsyncClient, others: Others, create_program: CreateProgram
):
    program = await create_program()
    others.learning.answer = (503, "")

    response = await client.post(
        f"/api/v1/programs/{program['id']}/courses",
        json={"course_id": str(others.add_course())},
        headers=ADMIN,
    )

    assert response.status_code == 503
    assert response.json()["status"] == 503


@pytest.mark.parametrize("body", [{}, {"course_id": "x"}, {"course_ids": []}])
async def test_add_course_bad_body_is_422(
    client: httpx.AsyncClient, create_program: CreateProgram, body: dict[str, Any]
):
    program = await create_program()

    response = await client.post(
        f"/api/v1/programs/{program['id']}/courses", json=body, headers=ADMIN
    )

    assert response.status_code == 422
    assert response.json()["errors"]


async def test_add_course_as_learner_is_403(
    client: httpx.AsyncClient, others: Others, create_program: CreateProgram
):
    program = await create_program()

    response = await client.post(
        f"/api/v1/programs/{program['id']}/courses",
        json={"course_id": str(others.add_course())},
        headers=as_user(uuid.uuid4()),
    )

    assert response.status_code == 403
