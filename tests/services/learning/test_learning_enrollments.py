"""Enrolling, progress, completion, and who may touch an enrollment."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from learning_testkit import (
    lesson_ids,
    new_learner,
    outbox,
    progress,
    user_id_of,
)

pytestmark = pytest.mark.anyio

Factory = Callable[..., Awaitable[dict[str, Any]]]

SOME_ID = "3d9b2a4e-5f61-4c7d-8e9f-0a1b2c3d4e5f"


async def test_enroll_returns_a_fresh_enrollment(
    client: httpx.AsyncClient, make_course: Factory
):
    course = await make_course(title="Chemistry")
    learner = new_learner()

    response = await client.post(
        f"/api/v1/courses/{course['id']}/enrollments", headers=learner
    )

    assert response.status_code == 201
    enrollment = response.json()
    assert set(enrollment) == {
        "id",
        "user_id",
        "course_id",
        "course_title",
        "status",
        "progress",
        "completed_lessons",
        "enrolled_at",
        "completed_at",
    }
    assert enrollment["user_id"] == user_id_of(learner)
    assert enrollment["course_id"] == course["id"]
    assert enrollment["course_title"] == "Chemistry"
    assert enrollment["status"] == "enrolled"
    assert enrollment["progress"] == 0
    assert enrollment["completed_lessons"] == []
    assert enrollment["completed_at"] is None


async def test_enroll_twice_is_409(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory
):
    course = await make_course()
    learner = new_learner()
    await enroll(course["id"], learner)

    again = await client.post(
        f"/api/v1/courses/{course['id']}/enrollments", headers=learner
    )

    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["detail"] == (
        f"you are already enrolled in course {course['id']}"
    )


async def test_enroll_in_unknown_course_is_404(client: httpx.AsyncClient, db: Any):
    course_id = uuid.uuid4()
    learner = new_learner()

    response = await client.post(
        f"/api/v1/courses/{course_id}/enrollments", headers=learner
    )

    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no course {course_id}"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM learning.enrollments WHERE user_id = $1",
            uuid.UUID(user_id_of(learner)),
        )
        == 0
    )


async def test_enrollments_me_lists_only_the_callers_newest_first(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory
):
    first, second = await make_course(), await make_course()
    learner, other = new_learner(), new_learner()
    older = await enroll(first["id"], learner)
    newer = await enroll(second["id"], learner)
    await enroll(first["id"], other)

    mine = await client.get("/api/v1/enrollments/me", headers=learner)
    nobodys = await client.get("/api/v1/enrollments/me", headers=new_learner())

    assert mine.status_code == 200
    assert mine.json() == {"items": [newer, older]}
    assert nobodys.json() == {"items": []}


async def test_progress_counts_lessons_done_and_moves_the_status(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory
):
    course = await make_course(lessons=3)
    first, second, third = lesson_ids(course)
    learner = new_learner()
    enrollment = await enroll(course["id"], learner)

    one = await progress(client, enrollment["id"], [second], learner)
    two = await progress(client, enrollment["id"], [first, second], learner)
    all_ = await progress(client, enrollment["id"], [third], learner)

    assert [r.status_code for r in (one, two, all_)] == [200, 200, 200]
    assert [r.json()["progress"] for r in (one, two, all_)] == [33, 66, 100]
    assert [r.json()["status"] for r in (one, two, all_)] == ["in_progress"] * 3
    assert one.json()["completed_lessons"] == [second]
    assert all_.json()["completed_lessons"] == [first, second, third]
    assert all_.json()["completed_at"] is None
    listed = await client.get("/api/v1/enrollments/me", headers=learner)
    assert listed.json()["items"] == [all_.json()]


async def test_progress_rounds_down_so_100_means_all_done(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory
):
    course = await make_course(lessons=7)
    learner = new_learner()
    enrollment = await enroll(course["id"], learner)

    seen = [
        (await progress(client, enrollment["id"], [lesson], learner)).json()["progress"]
        for lesson in lesson_ids(course)
    ]

    assert seen == [14, 28, 42, 57, 71, 85, 100]


async def test_progress_again_with_done_lessons_changes_nothing(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory, db: Any
):
    course = await make_course(lessons=2)
    first, _ = lesson_ids(course)
    learner = new_learner()
    enrollment = await enroll(course["id"], learner)

    before = await progress(client, enrollment["id"], [first, first], learner)
    after = await progress(client, enrollment["id"], [first], learner)

    assert before.status_code == after.status_code == 200
    assert after.json() == before.json()
    assert after.json()["progress"] == 50
    events = await outbox(db, "enrollment.progressed", enrollment_id=enrollment["id"])
    assert len(events) == 1


async def test_progress_with_another_courses_lesson_is_422_and_changes_nothing(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory
):
    course, other_course = await make_course(), await make_course()
    learner = new_learner()
    enrollment = await enroll(course["id"], learner)
    foreign = lesson_ids(other_course)[0]
    unknown = str(uuid.uuid4())

    response = await progress(
        client, enrollment["id"], [lesson_ids(course)[0], foreign, unknown], learner
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "completed_lessons",
            "message": f"not lesson(s) of course {course['id']}: {foreign}, {unknown}",
        }
    ]
    listed = await client.get("/api/v1/enrollments/me", headers=learner)
    assert listed.json()["items"][0]["completed_lessons"] == []
    assert listed.json()["items"][0]["status"] == "enrolled"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"completed_lessons": []},
            [
                (
                    "completed_lessons",
                    "List should have at least 1 item after validation, not 0",
                )
            ],
        ),
        ({}, [("completed_lessons", "Field required")]),
        (
            {"completed_lessons": ["lesson-1"]},
            [
                (
                    "completed_lessons.0",
                    "Input should be a valid UUID, invalid character: found `l` at 0",
                )
            ],
        ),
        (
            {"completed_lessons": [SOME_ID], "lessons": [SOME_ID]},
            [("lessons", "Extra inputs are not permitted")],
        ),
    ],
)
async def test_progress_bad_body_is_422_naming_the_field(
    client: httpx.AsyncClient,
    make_course: Factory,
    enroll: Factory,
    body: dict[str, Any],
    errors: list[tuple[str, str]],
):
    learner = new_learner()
    enrollment = await enroll((await make_course())["id"], learner)

    response = await client.post(
        f"/api/v1/enrollments/{enrollment['id']}/progress", json=body, headers=learner
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": field, "message": message} for field, message in errors
    ]


async def test_progress_names_at_most_five_foreign_lessons(
    client: httpx.AsyncClient, make_course: Factory, enroll: Factory
):
    course = await make_course()
    learner = new_learner()
    enrollment = await enroll(course["id"], learner)
    unknown = sorted(str(uuid.uuid4()) for _ in range(7))

    response = await progress(client, enrollment["id"], unknown, learner)

    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == (
        f"not lesson(s) of course {course['id']}: {', '.join(unknown[:5])} and 2 more"
    )
