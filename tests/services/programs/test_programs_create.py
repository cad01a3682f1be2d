"""Creating, listing and reading programs, and who may."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from programs_testkit import ADMIN, CLOSED_URL, Others, as_user

from services.programs.app import create_app
from services.programs.settings import Settings

pytestmark = pytest.mark.anyio

CreateProgram = Callable[..., Awaitable[dict[str, Any]]]

BOOLEAN = "Input should be a valid boolean"


async def test_create_program_answers_201_with_courses_in_order(
    client: httpx.AsyncClient, others: Others, db: asyncpg.Connection
):
    courses = [others.add_course(), others.add_course(), others.add_course()]

    response = await client.post(
        "/api/v1/programs",
        json={
            "title": "  Safety first  ",
            "course_ids": [str(c) for c in courses],
            "onboarding": False,
        },
        headers={**ADMIN, "X-Request-ID": "create-1"},
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "title", "course_ids", "onboarding", "created_at"}
    assert body["title"] == "Safety first"
    assert body["course_ids"] == [str(c) for c in courses]
    assert body["onboarding"] is False
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    stored = await db.fetchval(
        "SELECT title FROM programs.programs WHERE id = $1", uuid.UUID(body["id"])
    )
    assert stored == "Safety first"
    assert others.learning.calls == [
        {"ids": ",".join(str(c) for c in courses), "request_id": "create-1"}
    ]


async def test_create_program_without_courses_asks_learning_nothing(
    client: httpx.AsyncClient, others: Others
):
    response = await client.post(
        "/api/v1/programs", json={"title": "Empty for now"}, headers=ADMIN
    )

    assert response.status_code == 201
    assert response.json()["course_ids"] == []
    assert response.json()["onboarding"] is False
    assert others.learning.calls == []


async def test_create_program_unknown_courses_is_422_listing_them(
    client: httpx.AsyncClient, others: Others, db: asyncpg.Connection
):
    known = others.add_course()
    unknown = [uuid.uuid4(), uuid.uuid4()]
    before = await db.fetchval("SELECT count(*) FROM programs.programs")

    response = await client.post(
        "/api/v1/programs",
        json={
            "title": "Half real",
            "course_ids": [str(unknown[0]), str(known), str(unknown[1])],
        },
        headers=ADMIN,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["unknown_ids"] == [str(u) for u in unknown]
    assert body["errors"] == [
        {
            "field": "course_ids",
            "message": f"no course has the id(s) {unknown[0]}, {unknown[1]}",
        }
    ]
    assert str(unknown[0]) in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM programs.programs") == before


async def test_create_program_repeated_course_is_422_naming_it(
    client: httpx.AsyncClient, others: Others
):
    course = others.add_course()

    response = await client.post(
        "/api/v1/programs",
        json={"title": "Twice", "course_ids": [str(course), str(course)]},
        headers=ADMIN,
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "course_ids", "message": f"lists {course} more than once"}
    ]
    assert others.learning.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "   "}, "title"),
        ({"course_ids": []}, "title"),
        ({"title": "x", "course_ids": ["not-a-uuid"]}, "course_ids.0"),
        ({"title": "x", "onboarding": "perhaps"}, "onboarding"),
        ({"title": "x", "courses": []}, "courses"),
    ],
)
async def test_create_program_bad_body_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
):
    response = await client.post("/api/v1/programs", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"title": "Nul\x00"},
            "title",
            "must not contain the NUL character (U+0000)",
        ),
        # Only true and false: text or numbers are not taken for either.
        ({"title": "x", "onboarding": "yes"}, "onboarding", BOOLEAN),
        ({"title": "x", "onboarding": "true"}, "onboarding", BOOLEAN),
        ({"title": "x", "onboarding": "false"}, "onboarding", BOOLEAN),
        ({"title": "x", "onboarding": 1}, "onboarding", BOOLEAN),
        ({"title": "x", "onboarding": 0}, "onboarding", BOOLEAN),
        ({"title": "x", "onboarding": None}, "onboarding", BOOLEAN),
    ],
)
async def test_create_program_lax_or_unstorable_body_is_422_storing_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: dict[str, Any],
    field: str,
    message: str,
):
    before = await db.fetchval("SELECT count(*) FROM programs.programs")

    response = await client.post("/api/v1/programs", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": field, "message": message}]
    assert await db.fetchval("SELECT count(*) FROM programs.programs") == before


async def test_create_program_when_learning_is_unreachable_is_503_storing_nothing(
    settings: Settings, others: Others, db: asyncpg.Connection
):
    app = create_app(dataclasses.replace(settings, learning_urls=(CLOSED_URL,)))
    title = f"Never stored {uuid.uuid4()}"

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://programs"
        ) as client,
    ):
        response = await client.post(
            "/api/v1/programs",
            json={"title": title, "course_ids": [str(uuid.uuid4())]},
            headers=ADMIN,
        )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "the learning service did not answer /internal/courses; nothing was "
        "changed, try again later"
    )
    stored = await db.fetchval(
        "SELECT count(*) FROM programs.programs WHERE title = $1", title
    )
    assert stored == 0


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (
            (500, "{}"),
            "the learning service did not answer /internal/courses",
        ),
        (
            (404, '{"detail": "no such route"}'),
            "the learning service refused /internal/courses: HTTP 404",
        ),
        (
            (200, '{"courses": []}'),
            "the learning service answered /internal/courses with an unexpected "
            "body: KeyError('items')",
        ),
    ],
)
async def test_create_program_when_learning_answers_badly_is_503(
    client: httpx.AsyncClient,
    others: Others,
    answer: tuple[int, str],
    detail: str,
):
    others.learning.answer = answer

    response = await client.post(
        "/api/v1/programs",
        json={"title": "Doomed", "course_ids": [str(others.add_course())]},
        headers=ADMIN,
    )

    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"{detail}; nothing was changed, try again later"
    )


async def test_create_program_as_learner_is_403(client: httpx.AsyncClient):
    response = await client.post(
        "/api/v1/programs",
        json={"title": "Mine"},
        headers=as_user(uuid.uuid4(), "learner"),
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "this route is for admins only"


async def test_create_program_without_identity_is_401(client: httpx.AsyncClient):
    response = await client.post("/api/v1/programs", json={"title": "Anyone's"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_get_program_answers_it(
    client: httpx.AsyncClient, others: Others, create_program: CreateProgram
):
    created = await create_program([others.add_course()], title="Readable")

    response = await client.get(f"/api/v1/programs/{created['id']}", headers=ADMIN)

    assert response.status_code == 200
    assert response.json() == created


async def test_get_unknown_program_is_404(client: httpx.AsyncClient):
    program_id = uuid.uuid4()

    response = await client.get(f"/api/v1/programs/{program_id}", headers=ADMIN)

    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no program {program_id}"


async def test_get_program_with_malformed_id_is_422(client: httpx.AsyncClient):
    response = await client.get("/api/v1/programs/not-an-id", headers=ADMIN)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["program_id"]


async def test_list_programs_pages_oldest_first(
    client: httpx.AsyncClient, create_program: CreateProgram, db: asyncpg.Connection
):
    for number in range(3):
        await create_program(title=f"Listed {number}")
    total = await db.fetchval("SELECT count(*) FROM programs.programs")
    expected = await db.fetch(
        "SELECT id FROM programs.programs ORDER BY created_at, id LIMIT 2 OFFSET 1"
    )

    response = await client.get(
        "/api/v1/programs", params={"limit": 2, "offset": 1}, headers=ADMIN
    )

    assert response.status_code == 200
    assert response.json()["total"] == total
    assert [p["id"] for p in response.json()["items"]] == [
        str(row["id"]) for row in expected
    ]


async def test_list_programs_as_learner_is_403(client: httpx.AsyncClient):
    response = await client.get(
        "/api/v1/programs", headers=as_user(uuid.uuid4(), "learner")
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset")],
)
async def test_list_programs_bad_paging_is_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, int], field: str
):
    response = await client.get("/api/v1/programs", params=params, headers=ADMIN)

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]
