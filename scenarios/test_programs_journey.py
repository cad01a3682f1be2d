"""A learning program from creation to progress, end to end through the gateway.

An admin builds a program of two courses, two learners who registered
themselves are assigned to it, the learning service enrolls them (over
events), one of them finishes a course, and the admin's progress report shows
it (over events again). Cross-service effects are awaited, never slept for.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import allure
import httpx

from harness.endpoints import Endpoints
from harness.eventually import eventually

pytestmark = [allure.epic("Service contracts"), allure.feature("Programs")]

PASSWORD = "correct-horse-42"
EVENTS_TIMEOUT_S = 30.0


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def login(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = http.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json())


def admin(http: httpx.Client, stack: Endpoints) -> dict[str, str]:
    return login(http, stack.settings["admin_email"], stack.settings["admin_password"])


def new_learner(http: httpx.Client, name: str) -> tuple[str, dict[str, str]]:
    """A learner who registered themselves: their id and auth headers."""
    email = f"{name.lower()}-{uuid.uuid4().hex}@example.org"
    response = http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": name},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], login(http, email, PASSWORD)


def new_course(
    http: httpx.Client, headers: dict[str, str], title: str, lessons: list[str]
) -> dict[str, Any]:
    response = http.post(
        "/api/v1/courses",
        json={"title": title, "description": f"All about {title}", "lessons": lessons},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    course: dict[str, Any] = response.json()
    return course


def enrolled_courses(http: httpx.Client, headers: dict[str, str]) -> dict[str, str]:
    """The caller's enrollments: course id -> enrollment id."""
    response = http.get("/api/v1/enrollments/me", headers=headers)
    response.raise_for_status()
    return {e["course_id"]: e["id"] for e in response.json()["items"]}


def my_programs(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    response = http.get("/api/v1/programs/me", headers=headers)
    response.raise_for_status()
    return {p["program_id"]: p for p in response.json()["items"]}


@allure.story("An assigned program enrolls and tracks its learners")
def test_program_assignment_enrollment_and_progress(
    http: httpx.Client, stack: Endpoints
):
    boss = admin(http, stack)
    safety = new_course(http, boss, "Site safety", ["Helmets", "Harnesses"])
    quality = new_course(http, boss, "Quality", ["Checklists"])

    created = http.post(
        "/api/v1/programs",
        json={
            "title": "New site crew",
            "course_ids": [safety["id"]],
            "onboarding": False,
        },
        headers=boss,
    )
    assert created.status_code == 201, created.text
    program = created.json()
    added = http.post(
        f"/api/v1/programs/{program['id']}/courses",
        json={"course_id": quality["id"]},
        headers=boss,
    )
    assert added.status_code == 200, added.text
    assert added.json()["course_ids"] == [safety["id"], quality["id"]]

    ann_id, ann = new_learner(http, "Ann")
    bob_id, bob = new_learner(http, "Bob")
    due_at = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
    assigned = http.post(
        f"/api/v1/programs/{program['id']}/assignments",
        json={"user_ids": [ann_id, bob_id], "due_at": due_at.isoformat()},
        headers=boss,
    )
    assert assigned.status_code == 201, assigned.text
    assert assigned.json() == {
        "program_id": program["id"],
        "assigned": [ann_id, bob_id],
        "already_assigned": [],
    }

    both_courses = {safety["id"], quality["id"]}
    for name, learner in (("Ann", ann), ("Bob", bob)):
        eventually(
            lambda learner=learner: enrolled_courses(http, learner),
            until=lambda found: both_courses <= set(found),
            timeout_s=EVENTS_TIMEOUT_S,
            what=f"{name} to be enrolled in both courses of the program",
        )
        mine = my_programs(http, learner)[program["id"]]
        assert mine["title"] == "New site crew"
        assert mine["onboarding"] is False
        assert datetime.fromisoformat(mine["due_at"]) == due_at
        assert (mine["courses_total"], mine["overdue"]) == (2, False)

    enrollment_id = enrolled_courses(http, ann)[safety["id"]]
    lessons = http.get(f"/api/v1/courses/{safety['id']}", headers=ann)
    assert lessons.status_code == 200, lessons.text
    progressed = http.post(
        f"/api/v1/enrollments/{enrollment_id}/progress",
        json={
            "completed_lessons": [lesson["id"] for lesson in lessons.json()["lessons"]]
        },
        headers=ann,
    )
    assert progressed.status_code == 200, progressed.text
    completed = http.post(f"/api/v1/enrollments/{enrollment_id}/complete", headers=ann)
    assert completed.status_code == 200, completed.text

    def report() -> dict[str, Any]:
        response = http.get(f"/api/v1/programs/{program['id']}/progress", headers=boss)
        response.raise_for_status()
        return {item["user_id"]: item for item in response.json()["items"]}

    progress = eventually(
        report,
        until=lambda items: items.get(ann_id, {}).get("courses_done") == 1,
        timeout_s=EVENTS_TIMEOUT_S,
        what="the admin's report to show Ann's finished course",
    )
    assert set(progress) == {ann_id, bob_id}
    assert progress[ann_id]["courses_total"] == 2
    assert progress[ann_id]["percent"] == 50
    assert progress[ann_id]["overdue"] is False
    assert progress[bob_id]["courses_done"] == 0
    assert progress[bob_id]["percent"] == 0
    assert my_programs(http, ann)[program["id"]]["courses_done"] == 1


@allure.story("Bad assignments are refused")
def test_assigning_an_unknown_user_is_422(http: httpx.Client, stack: Endpoints):
    boss = admin(http, stack)
    program = http.post(
        "/api/v1/programs", json={"title": "Nobody's", "course_ids": []}, headers=boss
    ).json()
    stranger = str(uuid.uuid4())

    response = http.post(
        f"/api/v1/programs/{program['id']}/assignments",
        json={"user_ids": [stranger]},
        headers=boss,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["unknown_ids"] == [stranger]


@allure.story("Only admins manage programs")
def test_learner_on_admin_routes_is_403(http: httpx.Client, stack: Endpoints):
    boss = admin(http, stack)
    program = http.post(
        "/api/v1/programs",
        json={"title": "Admins only", "course_ids": []},
        headers=boss,
    ).json()
    learner_id, learner = new_learner(http, "Eve")

    attempts = [
        http.post("/api/v1/programs", json={"title": "Mine"}, headers=learner),
        http.post(
            f"/api/v1/programs/{program['id']}/assignments",
            json={"user_ids": [learner_id]},
            headers=learner,
        ),
        http.post(
            f"/api/v1/programs/{program['id']}/courses",
            json={"course_id": str(uuid.uuid4())},
            headers=learner,
        ),
        http.get(f"/api/v1/programs/{program['id']}/progress", headers=learner),
    ]

    assert [response.status_code for response in attempts] == [403] * 4
    assert all(
        r.headers["content-type"] == "application/problem+json" for r in attempts
    )
    # Perhaps onboarded meanwhile (a stack may have an onboarding program), but
    # not assigned to this one by themselves.
    assert program["id"] not in my_programs(http, learner)
