"""Completing an enrollment, and who may touch one."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from learning_testkit import (
    ADMIN,
    Directory,
    complete,
    lesson_ids,
    new_learner,
    outbox,
    progress,
    user_id_of,
)

pytestmark = pytest.mark.anyio

Factory = Callable[..., Awaitable[dict[str, Any]]]


async def test_complete_before_every_lesson_is_done_is_409_saying_how_many_remain(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory, db: Any
):
    course = await make_course(lessons=3)
    learner = new_learner()
    enrollment = await enroll(course["id"], learner)
    await progress(client, enrollment["id"], lesson_ids(course)[:1], learner)

    response = await complete(client, enrollment["id"], learner)

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"enrollment {enrollment['id']} cannot be completed yet: "
        "2 of its 3 lesson(s) remain"
    )
    assert await outbox(db, "course.completed", enrollment_id=enrollment["id"]) == []


async def test_complete_issues_a_certificate_in_the_learners_name(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
):
    course = await make_course(title="Astronomy", lessons=2)
    learner = directory.add("Vera Rubin")
    enrollment = await enroll(course["id"], learner)
    await progress(client, enrollment["id"], lesson_ids(course), learner)

    response = await complete(client, enrollment["id"], learner)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"enrollment", "certificate"}
    done = body["enrollment"]
    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert done["completed_at"] is not None
    certificate = body["certificate"]
    assert set(certificate) == {
        "id",
        "code",
        "course_id",
        "course_title",
        "user_name",
        "issued_at",
    }
    assert certificate["user_name"] == "Vera Rubin"
    assert certificate["course_title"] == "Astronomy"
    assert certificate["course_id"] == course["id"]
    assert len(certificate["code"]) >= 22
    assert directory.asked == [user_id_of(learner)]
    listed = await client.get("/api/v1/enrollments/me", headers=learner)
    assert listed.json()["items"] == [done]


async def test_complete_twice_is_409(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
    db: Any,
):
    course = await make_course(lessons=1)
    learner = directory.add("Ada Lovelace")
    enrollment = await enroll(course["id"], learner)
    await progress(client, enrollment["id"], lesson_ids(course), learner)
    await complete(client, enrollment["id"], learner)

    again = await complete(client, enrollment["id"], learner)

    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"enrollment {enrollment['id']} is already completed"
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM learning.certificates WHERE enrollment_id = $1",
            uuid.UUID(enrollment["id"]),
        )
        == 1
    )


async def test_progress_after_completion_keeps_it_completed(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
):
    course = await make_course(lessons=1)
    learner = directory.add("Grace Hopper")
    enrollment = await enroll(course["id"], learner)
    await progress(client, enrollment["id"], lesson_ids(course), learner)
    done = (await complete(client, enrollment["id"], learner)).json()["enrollment"]

    response = await progress(client, enrollment["id"], lesson_ids(course), learner)

    assert response.status_code == 200
    assert response.json() == done


@pytest.mark.parametrize("stranger", ["learner", "admin"])
async def test_another_users_enrollment_is_404_for_every_action(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    directory: Directory,
    stranger: str,
):
    course = await make_course(lessons=1)
    owner = directory.add("Owner")
    enrollment = await enroll(course["id"], owner)
    intruder = ADMIN if stranger == "admin" else directory.add("Intruder")

    touched = await progress(client, enrollment["id"], lesson_ids(course), intruder)
    finished = await complete(client, enrollment["id"], intruder)

    expected = f"you have no enrollment {enrollment['id']}"
    assert touched.status_code == finished.status_code == 404
    assert touched.json()["detail"] == finished.json()["detail"] == expected
    mine = (await client.get("/api/v1/enrollments/me", headers=owner)).json()
    assert mine["items"] == [enrollment]


async def test_unknown_enrollment_is_404(client: httpx.AsyncClient):
    enrollment_id = uuid.uuid4()

    response = await complete(client, str(enrollment_id), new_learner())

    assert response.status_code == 404
    assert response.json()["detail"] == f"you have no enrollment {enrollment_id}"
