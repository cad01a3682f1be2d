"""Onboarding, end to end through the gateway: a user who registers is assigned
to the onboarding program and enrolled in its courses without any further call.

A stack has at most one onboarding program and scenarios run in parallel
against one stack, so this one creates it only when there is none yet, and
otherwise uses the one there is.
"""

from __future__ import annotations

import uuid
from typing import Any

import allure
import httpx

from harness.endpoints import Endpoints
from harness.eventually import eventually
from harness.exchanges import Redacted

pytestmark = [allure.epic("Service contracts"), allure.feature("Onboarding")]

PASSWORD = "correct-horse-42"
EVENTS_TIMEOUT_S = 30.0


def login(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    """Headers that act as the user, shown redacted if a failure prints them."""
    __tracebackhide__ = True  # its arguments may be the admin's credentials
    response = http.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return Redacted(Authorization=f"Bearer {response.json()['access_token']}")


def onboarding_program(http: httpx.Client, boss: dict[str, str]) -> dict[str, Any]:
    """The stack's onboarding program, with at least one course: created here
    if there is none yet; else the existing one, given a course if it has none."""
    course = http.post(
        "/api/v1/courses",
        json={"title": "Welcome to Campus", "description": "Start here",
              "lessons": ["Who we are", "How we learn"]},
        headers=boss,
    )  # fmt: skip
    assert course.status_code == 201, course.text
    course_id = course.json()["id"]
    created = http.post(
        "/api/v1/programs",
        json={"title": "Onboarding", "course_ids": [course_id], "onboarding": True},
        headers=boss,
    )
    if created.status_code == 201:
        program: dict[str, Any] = created.json()
        return program
    assert created.status_code == 409, created.text
    found = http.get("/api/v1/programs", params={"onboarding": "true"}, headers=boss)
    assert found.status_code == 200, found.text
    [program] = found.json()["items"]
    assert program["id"] == created.json()["program_id"]
    if not program["course_ids"]:
        added = http.post(
            f"/api/v1/programs/{program['id']}/courses",
            json={"course_id": course_id},
            headers=boss,
        )
        assert added.status_code == 200, added.text
        program = added.json()
    return program


@allure.story("Registration assigns the onboarding program and enrolls in its courses")
def test_new_user_is_assigned_and_enrolled_without_asking(
    http: httpx.Client, stack: Endpoints
):
    boss = login(http, stack.settings["admin_email"], stack.settings["admin_password"])
    program = onboarding_program(http, boss)
    assert program["onboarding"] is True

    email = f"newcomer-{uuid.uuid4().hex}@example.org"
    registered = http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Nia Newcomer"},
    )
    assert registered.status_code == 201, registered.text
    newcomer = login(http, email, PASSWORD)

    def my_programs() -> dict[str, Any]:
        response = http.get("/api/v1/programs/me", headers=newcomer)
        response.raise_for_status()
        return {p["program_id"]: p for p in response.json()["items"]}

    mine = eventually(
        my_programs,
        until=lambda found: program["id"] in found,
        timeout_s=EVENTS_TIMEOUT_S,
        what="the newcomer to be assigned to the onboarding program",
    )
    assert mine[program["id"]]["onboarding"] is True
    assert mine[program["id"]]["due_at"] is None
    assert mine[program["id"]]["courses_total"] >= len(program["course_ids"]) >= 1

    def enrolled() -> set[str]:
        response = http.get("/api/v1/enrollments/me", headers=newcomer)
        response.raise_for_status()
        return {e["course_id"] for e in response.json()["items"]}

    eventually(
        enrolled,
        until=lambda courses: set(program["course_ids"]) <= courses,
        timeout_s=EVENTS_TIMEOUT_S,
        what=f"the newcomer to be enrolled in {program['course_ids']}",
    )
