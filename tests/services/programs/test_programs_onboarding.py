"""The onboarding program: at most one, and every newly registered user is
assigned to it. Each test has a database of its own, without any program."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from programs_testkit import ADMIN, Others, as_user, handled, outbox, publish

from services.common.events import Event
from services.programs import catalog
from services.programs.onboarding import on_user_registered
from services.programs.payloads import BadPayload

pytestmark = pytest.mark.anyio

CreateProgram = Callable[..., Awaitable[dict[str, Any]]]
Assign = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def database(fresh_database: str) -> str:
    return fresh_database


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def register(
    redis: aioredis.Redis,
    db: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    at: datetime | None = None,
    event_id: str | None = None,
) -> str:
    """Publish user.registered as the users service would; wait until handled."""
    event_id = await publish(
        redis,
        "user.registered",
        {"user_id": str(user_id), "email": "new@example.org", "full_name": "New"},
        source="users",
        event_id=event_id,
        occurred_at=at,
    )
    await handled(db, event_id)
    return event_id


async def test_create_onboarding_program_then_find_it(
    client: httpx.AsyncClient, others: Others, create_program: CreateProgram
):
    program = await create_program([others.add_course()], onboarding=True)
    await create_program(title="Not onboarding")

    response = await client.get(
        "/api/v1/programs", params={"onboarding": "true"}, headers=ADMIN
    )

    assert program["onboarding"] is True
    assert response.status_code == 200
    assert response.json() == {"items": [program], "total": 1}


async def test_second_onboarding_program_is_409_naming_the_first(
    client: httpx.AsyncClient, create_program: CreateProgram, db: asyncpg.Connection
):
    first = await create_program(title="Day one", onboarding=True)

    response = await client.post(
        "/api/v1/programs",
        json={"title": "Day one, again", "course_ids": [], "onboarding": True},
        headers=ADMIN,
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["program_id"] == first["id"]
    assert body["detail"] == (
        f"program {first['id']} ('Day one') is the onboarding program already; "
        "there can be only one"
    )
    assert await db.fetchval("SELECT count(*) FROM programs.programs") == 1


async def test_concurrent_onboarding_programs_only_one_is_created(
    client: httpx.AsyncClient, db: asyncpg.Connection
):
    async def create(title: str) -> httpx.Response:
        return await client.post(
            "/api/v1/programs",
            json={"title": title, "onboarding": True},
            headers=ADMIN,
        )

    responses = await asyncio.gather(*(create(f"Race {n}") for n in range(4)))

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert all(
        r.json()["program_id"] == winner["id"]
        for r in responses
        if r.status_code == 409
    )
    assert await db.fetchval("SELECT count(*) FROM programs.programs") == 1


async def test_the_index_refuses_a_second_onboarding_program(pool: asyncpg.Pool):
    first = await catalog.create(pool, title="First", course_ids=[], onboarding=True)

    with pytest.raises(catalog.OnboardingTaken) as raised:
        await catalog.create(pool, title="Second", course_ids=[], onboarding=True)

    assert raised.value.existing == first


async def test_registered_user_is_assigned_to_the_onboarding_program(
    client: httpx.AsyncClient,
    others: Others,
    create_program: CreateProgram,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    courses = [others.add_course(), others.add_course()]
    program = await create_program(courses, title="Welcome", onboarding=True)
    user = uuid.uuid4()

    await register(redis, db, user)

    assert await outbox(db, user) == [
        {
            "program_id": program["id"],
            "program_title": "Welcome",
            "user_id": str(user),
            "course_ids": [str(c) for c in courses],
            "due_at": None,
        }
    ]
    mine = await client.get("/api/v1/programs/me", headers=as_user(user))
    assert mine.json()["items"] == [
        {
            "program_id": program["id"],
            "title": "Welcome",
            "onboarding": True,
            "due_at": None,
            "courses_total": 2,
            "courses_done": 0,
            "percent": 0,
            "overdue": False,
        }
    ]


async def test_registered_user_without_onboarding_program_is_not_assigned(
    client: httpx.AsyncClient,
    create_program: CreateProgram,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    await create_program(title="Ordinary")
    user = uuid.uuid4()

    await register(redis, db, user)

    assert await outbox(db, user) == []
    assert await db.fetchval("SELECT count(*) FROM programs.assignments") == 0


async def test_user_registered_before_the_onboarding_program_is_not_assigned(
    client: httpx.AsyncClient,
    create_program: CreateProgram,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    program = await create_program(onboarding=True)
    created_at = datetime.fromisoformat(program["created_at"])
    user = uuid.uuid4()

    await register(redis, db, user, at=created_at - timedelta(seconds=1))

    assert await outbox(db, user) == []
    assert await db.fetchval("SELECT count(*) FROM programs.assignments") == 0


async def test_redelivered_registration_assigns_once(
    client: httpx.AsyncClient,
    create_program: CreateProgram,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    await create_program(onboarding=True)
    user = uuid.uuid4()
    event_id = await register(redis, db, user)

    await publish(
        redis,
        "user.registered",
        {"user_id": str(user), "email": "new@example.org", "full_name": "New"},
        source="users",
        event_id=event_id,
    )
    await register(redis, db, uuid.uuid4())  # handled after the copy

    assert len(await outbox(db, user)) == 1


async def test_registration_of_an_assigned_user_publishes_nothing_again(
    others: Others,
    create_program: CreateProgram,
    assign: Assign,
    redis: aioredis.Redis,
    db: asyncpg.Connection,
):
    program = await create_program(onboarding=True)
    user = others.add_user()
    await assign(program["id"], [user], due_at="2031-01-01T00:00:00Z")

    await register(redis, db, user, at=datetime.now(UTC))

    events = await outbox(db, user)
    assert len(events) == 1
    assert events[0]["due_at"] == "2031-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("payload", "occurred_at", "message"),
    [
        ({"email": "x@example.org"}, "2030-01-01T00:00:00+00:00",
         "user_id=None is not a uuid"),
        ({"user_id": str(uuid.UUID(int=7))}, "a while ago",
         "occurred_at='a while ago' is not an RFC 3339 time with an offset"),
    ],
)  # fmt: skip
async def test_registration_bad_payload_names_event_and_field(
    db: asyncpg.Connection, payload: dict[str, Any], occurred_at: str, message: str
):
    event = Event("e-9", "user.registered", "users", payload, occurred_at)

    with pytest.raises(BadPayload) as raised:
        async with db.transaction():
            await on_user_registered(db, event)

    assert str(raised.value) == f"user.registered event e-9: {message}"
