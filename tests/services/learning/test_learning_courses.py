"""Creating courses with their lessons, and reading one back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from learning_testkit import ADMIN, as_user, new_learner

pytestmark = pytest.mark.anyio

SOME_ID = "6f1c7a52-3d0e-4b8e-9a55-0c2f4b7d9e10"
NUL_MESSAGE = "must not contain the NUL character (U+0000)"


async def test_create_course_numbers_lessons_in_order(client: httpx.AsyncClient):
    response = await client.post(
        "/api/v1/courses",
        json={
            "title": "  Python basics ",
            "description": "Variables, loops and functions.",
            "lessons": ["Variables", {"title": "Loops"}, " Functions "],
        },
        headers=ADMIN,
    )

    assert response.status_code == 201
    course = response.json()
    assert set(course) == {"id", "title", "description", "lessons", "created_at"}
    assert course["title"] == "Python basics"
    assert course["description"] == "Variables, loops and functions."
    assert [(x["title"], x["position"]) for x in course["lessons"]] == [
        ("Variables", 1),
        ("Loops", 2),
        ("Functions", 3),
    ]
    assert len({x["id"] for x in course["lessons"]}) == 3
    assert datetime.fromisoformat(course["created_at"]).tzinfo is not None


async def test_create_course_without_description_leaves_it_empty(
    client: httpx.AsyncClient,
):
    response = await client.post(
        "/api/v1/courses", json={"title": "Terse", "lessons": ["One"]}, headers=ADMIN
    )

    assert response.status_code == 201
    assert response.json()["description"] == ""


async def test_get_course_returns_what_was_created(
    client: httpx.AsyncClient, make_course: Any
):
    course = await make_course(lessons=["Intro", "Middle", "End"])

    response = await client.get(
        f"/api/v1/courses/{course['id']}", headers=new_learner()
    )

    assert response.status_code == 200
    assert response.json() == course


async def test_get_unknown_course_is_404_problem(client: httpx.AsyncClient):
    course_id = uuid.uuid4()

    response = await client.get(f"/api/v1/courses/{course_id}", headers=new_learner())

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": f"there is no course {course_id}",
    }


async def test_get_course_with_malformed_id_is_422_naming_it(
    client: httpx.AsyncClient,
):
    response = await client.get("/api/v1/courses/not-an-id", headers=new_learner())

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["course_id"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"title": "", "lessons": ["One"]},
            "title",
            "String should have at least 1 character",
        ),
        (
            {"title": "   ", "lessons": ["One"]},
            "title",
            "String should have at least 1 character",
        ),
        (
            {"title": "x" * 201, "lessons": ["One"]},
            "title",
            "String should have at most 200 characters",
        ),
        ({"lessons": ["One"]}, "title", "Field required"),
        ({"title": "No lessons"}, "lessons", "Field required"),
        (
            {"title": "No lessons", "lessons": []},
            "lessons",
            "List should have at least 1 item after validation, not 0",
        ),
        (
            {"title": "Blank lesson", "lessons": ["One", ""]},
            "lessons.1.title",
            "String should have at least 1 character",
        ),
        (
            {"title": "Long lesson", "lessons": [{"title": "y" * 201}]},
            "lessons.0.title",
            "String should have at most 200 characters",
        ),
        (
            {"title": "Lesson without title", "lessons": [{}]},
            "lessons.0.title",
            "Field required",
        ),
        (
            {"title": "Numeric lesson", "lessons": [7]},
            "lessons.0",
            "must be a lesson title or an object with a title",
        ),
        (
            {"title": "Lessons not a list", "lessons": "One"},
            "lessons",
            "Input should be a valid list",
        ),
        (
            {"title": "Typo", "lessons": ["One"], "level": 3},
            "level",
            "Extra inputs are not permitted",
        ),
        ({"title": "Nul\x00", "lessons": ["One"]}, "title", NUL_MESSAGE),
        (
            {"title": "Nul", "description": "a\x00b", "lessons": ["One"]},
            "description",
            NUL_MESSAGE,
        ),
        ({"title": "Nul", "lessons": ["One", "\x00"]}, "lessons.1.title", NUL_MESSAGE),
        (
            {"title": "Nul", "lessons": [{"title": "T\x00wo"}]},
            "lessons.0.title",
            NUL_MESSAGE,
        ),
    ],
)
async def test_create_course_bad_input_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, message: str
):
    response = await client.post("/api/v1/courses", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"] == [{"field": field, "message": message}]
    assert problem["detail"] == f"the request is invalid: {field}: {message}"


async def test_create_course_with_too_many_lessons_is_422(
    client: httpx.AsyncClient,
):
    body = {"title": "Endless", "lessons": [f"L{n}" for n in range(501)]}

    response = await client.post("/api/v1/courses", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "lessons",
            "message": "List should have at most 500 items after validation, not 501",
        }
    ]


async def test_create_course_as_learner_is_403(client: httpx.AsyncClient, db: Any):
    title = f"Forbidden {uuid.uuid4().hex}"

    response = await client.post(
        "/api/v1/courses",
        json={"title": title, "lessons": ["One"]},
        headers=as_user(uuid.uuid4(), "learner"),
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "this route is for admins only"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM learning.courses WHERE title = $1", title
        )
        == 0
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/courses"),
        ("GET", "/api/v1/courses"),
        ("GET", "/api/v2/courses"),
        ("GET", f"/api/v1/courses/{SOME_ID}"),
        ("POST", f"/api/v1/courses/{SOME_ID}/enrollments"),
        ("GET", "/api/v1/enrollments/me"),
        ("POST", f"/api/v1/enrollments/{SOME_ID}/progress"),
        ("POST", f"/api/v1/enrollments/{SOME_ID}/complete"),
        ("GET", "/api/v1/certificates/me"),
    ],
)
async def test_routes_without_identity_are_401(
    client: httpx.AsyncClient, method: str, path: str
):
    response = await client.request(method, path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == (
        "this route needs an authenticated user; send an access token"
    )
