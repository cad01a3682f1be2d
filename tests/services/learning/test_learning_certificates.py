"""The caller's certificates, and verifying a certificate's code publicly."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from learning_testkit import Directory, new_learner

pytestmark = pytest.mark.anyio

Factory = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def certify(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Takes ``learner`` through a new course titled ``title``; returns the
    certificate."""

    async def take(learner: dict[str, str], title: str) -> dict[str, Any]:
        course = await make_course(title=title, lessons=1)
        enrollment = await enroll(course["id"], learner)
        path = f"/api/v1/enrollments/{enrollment['id']}"
        lessons = [lesson["id"] for lesson in course["lessons"]]
        await client.post(
            f"{path}/progress", json={"completed_lessons": lessons}, headers=learner
        )
        done = await client.post(f"{path}/complete", headers=learner)
        assert done.status_code == 200, done.text
        certificate: dict[str, Any] = done.json()["certificate"]
        return certificate

    return take


async def test_certificates_me_lists_the_callers_newest_first(
    client: httpx.AsyncClient, certify: Factory, directory: Directory
):
    learner = directory.add("Marie Curie")
    first = await certify(learner, "Radioactivity")
    second = await certify(learner, "Polonium")
    await certify(directory.add("Pierre Curie"), "Radioactivity")

    mine = await client.get("/api/v1/certificates/me", headers=learner)
    none = await client.get("/api/v1/certificates/me", headers=new_learner())

    assert mine.status_code == 200
    assert mine.json() == {"items": [second, first]}
    assert [c["user_name"] for c in mine.json()["items"]] == ["Marie Curie"] * 2
    assert none.json() == {"items": []}


async def test_verify_needs_no_identity_and_tells_who_and_what(
    client: httpx.AsyncClient, certify: Factory, directory: Directory
):
    certificate = await certify(directory.add("Alan Turing"), "Computability")

    response = await client.get(f"/api/v1/certificates/{certificate['code']}/verify")

    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "user_name": "Alan Turing",
        "course_title": "Computability",
        "issued_at": certificate["issued_at"],
    }


async def test_codes_are_unique_and_unguessable(certify: Factory, directory: Directory):
    learner = directory.add("Many Courses")

    codes = [(await certify(learner, f"Course {n}"))["code"] for n in range(5)]

    assert len(set(codes)) == 5
    # 16 random bytes, URL-safe: 128 bits a guess has to hit.
    assert all(len(code) == 22 for code in codes)


async def test_verify_unknown_code_is_404_problem(client: httpx.AsyncClient):
    code = secrets.token_urlsafe(16)

    response = await client.get(f"/api/v1/certificates/{code}/verify")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"no certificate has the code {code!r}"


async def test_verify_overlong_code_is_422(client: httpx.AsyncClient):
    response = await client.get(f"/api/v1/certificates/{'x' * 65}/verify")

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "code", "message": "String should have at most 64 characters"}
    ]


@pytest.mark.parametrize("code", ["a%00b", "%00"])
async def test_verify_code_with_nul_is_422(client: httpx.AsyncClient, code: str):
    response = await client.get(f"/api/v1/certificates/{code}/verify")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {
            "field": "code",
            "message": "must not contain the NUL character (U+0000)",
        }
    ]
