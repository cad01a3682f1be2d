"""Completion asks the users service for the learner's name; when it cannot
tell, the request fails and nothing changes."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from learning_testkit import Directory, as_user, closed_port_url, outbox
from starlette.responses import JSONResponse, PlainTextResponse, Response

from services.learning.settings import Settings

pytestmark = pytest.mark.anyio

Factory = Callable[..., Awaitable[dict[str, Any]]]


async def ready_to_complete(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    learner: dict[str, str],
) -> dict[str, Any]:
    """An enrollment of ``learner`` with every lesson done."""
    course = await make_course(lessons=2)
    enrollment = await enroll(course["id"], learner)
    done = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/progress",
        json={"completed_lessons": [x["id"] for x in course["lessons"]]},
        headers=learner,
    )
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


async def assert_nothing_changed(
    client: httpx.AsyncClient,
    db: Any,
    enrollment: dict[str, Any],
    learner: dict[str, str],
) -> None:
    mine = await client.get("/api/v1/enrollments/me", headers=learner)
    assert mine.json()["items"] == [enrollment]
    certificates = await client.get("/api/v1/certificates/me", headers=learner)
    assert certificates.json() == {"items": []}
    assert await outbox(db, "course.completed", enrollment_id=enrollment["id"]) == []


async def test_complete_when_the_users_service_is_unreachable_is_503(
    serve: Any,
    settings: Settings,
    make_course: Factory,
    enroll: Factory,
    client: httpx.AsyncClient,
    directory: Directory,
    db: Any,
):
    learner = directory.add("Unreached Learner")
    enrollment = await ready_to_complete(client, make_course, enroll, learner)
    cut_off = dataclasses.replace(settings, users_urls=(closed_port_url(),))

    async with serve(cut_off) as isolated:
        response = await isolated.post(
            f"/api/v1/enrollments/{enrollment['id']}/complete", headers=learner
        )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "the users service cannot tell the learner's name (no replica answered); "
        "nothing was changed, try again later"
    )
    await assert_nothing_changed(client, db, enrollment, learner)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (PlainTextResponse("down", status_code=500), "no replica answered"),
        (PlainTextResponse("who?", status_code=400), "it answered HTTP 400"),
        (PlainTextResponse("<html>"), "its answer is unreadable: "),
        (JSONResponse({"users": []}), "its answer has no list of items"),
        (JSONResponse([]), "its answer has no list of items"),
    ],
)
async def test_complete_when_the_users_service_answers_badly_is_503(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
    db: Any,
    failure: Response,
    reason: str,
):
    learner = directory.add("Badly Answered")
    enrollment = await ready_to_complete(client, make_course, enroll, learner)
    directory.answer = failure

    response = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/complete", headers=learner
    )

    assert response.status_code == 503
    assert response.json()["detail"].startswith(
        f"the users service cannot tell the learner's name ({reason}"
    )
    await assert_nothing_changed(client, db, enrollment, learner)


async def test_complete_when_the_user_has_no_name_is_503(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
    db: Any,
):
    learner = directory.add("   ")
    enrollment = await ready_to_complete(client, make_course, enroll, learner)

    response = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/complete", headers=learner
    )

    assert response.status_code == 503
    assert response.json()["detail"].startswith(
        "the users service cannot tell the learner's name "
        f"(user {learner['X-User-Id']} has no full_name)"
    )
    await assert_nothing_changed(client, db, enrollment, learner)


async def test_complete_for_a_user_the_users_service_does_not_know_is_409(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
    db: Any,
):
    learner = {"X-User-Id": str(uuid.uuid4()), "X-User-Roles": "learner"}
    enrollment = await ready_to_complete(client, make_course, enroll, learner)

    response = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/complete", headers=learner
    )

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"the users service has no user {learner['X-User-Id']}, and a certificate "
        "needs the learner's name"
    )
    assert directory.asked == [learner["X-User-Id"]]
    await assert_nothing_changed(client, db, enrollment, learner)


async def test_complete_early_does_not_ask_the_users_service(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
):
    learner = directory.add("Too Early")
    enrollment = await enroll((await make_course())["id"], learner)

    response = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/complete", headers=learner
    )

    assert response.status_code == 409
    assert directory.asked == []


async def test_complete_ignores_answers_about_other_users(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
):
    learner = directory.add("Not Listed")
    enrollment = await ready_to_complete(client, make_course, enroll, learner)
    directory.answer = JSONResponse(
        {"items": ["junk", {"id": "not-an-id"}, {"id": str(uuid.uuid4())}]}
    )

    response = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/complete", headers=learner
    )

    assert response.status_code == 409
    assert response.json()["detail"].startswith(
        f"the users service has no user {learner['X-User-Id']}"
    )


async def test_complete_reads_the_name_from_the_real_users_service(
    serve: Any,
    settings: Settings,
    stack: Any,
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
):
    users = stack["users"]
    email = f"real-{uuid.uuid4().hex}@example.org"
    async with httpx.AsyncClient(base_url=users.url) as direct:
        registered = await direct.post(
            "/api/v1/auth/register",
            json={
                "email": email,
                "password": "correct-horse-7",
                "full_name": "Rita Real",
            },
        )
    assert registered.status_code == 201, registered.text
    learner = as_user(registered.json()["id"])
    enrollment = await ready_to_complete(client, make_course, enroll, learner)

    async with serve(
        dataclasses.replace(settings, users_urls=tuple(users.urls))
    ) as http:
        response = await http.post(
            f"/api/v1/enrollments/{enrollment['id']}/complete", headers=learner
        )

    assert response.status_code == 200, response.text
    assert response.json()["certificate"]["user_name"] == "Rita Real"
