"""A learner's journey through one course, end to end through the gateway only.

An admin publishes a course; a learner registers, finds it (v1 search, v2
cursor pages), enrolls, works through the lessons, completes it and gets a
certificate that anyone can verify without logging in. Another learner
cannot touch the first one's enrollment. The v1 listing, which v2 replaces,
says so in every answer.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import allure
import httpx

from harness.endpoints import Endpoints

pytestmark = [allure.epic("Service contracts"), allure.feature("Learning")]

PASSWORD = "correct-horse-42"


def login(http: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = http.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def register(http: httpx.Client, full_name: str) -> dict[str, str]:
    """A new learner's auth headers."""
    email = f"learner-{uuid.uuid4().hex}@example.org"
    response = http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": full_name},
    )
    assert response.status_code == 201, response.text
    return login(http, email, PASSWORD)


def publish_course(http: httpx.Client, stack: Endpoints, title: str) -> dict[str, Any]:
    admin = login(http, stack.settings["admin_email"], stack.settings["admin_password"])
    response = http.post(
        "/api/v1/courses",
        json={
            "title": title,
            "description": "Reading maps, stars and the sun.",
            "lessons": ["Maps", {"title": "Stars"}, "The sun"],
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    course: dict[str, Any] = response.json()
    return course


def walk_v2(http: httpx.Client, learner: dict[str, str], q: str) -> list[str]:
    """Course ids over every v2 page of a search, one course per page."""
    ids: list[str] = []
    params: dict[str, Any] = {"q": q, "limit": 1}
    for _ in range(10):
        response = http.get("/api/v2/courses", params=params, headers=learner)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    return ids


@allure.story("A learner earns a certificate anyone can verify")
def test_a_learner_completes_a_course_and_anyone_verifies_the_certificate(
    http: httpx.Client, stack: Endpoints
):
    word = f"navigation{uuid.uuid4().hex[:8]}"
    course = publish_course(http, stack, f"Celestial {word}")
    sequel = publish_course(http, stack, f"Celestial {word} II")
    learner = register(http, "Nora Navigator")

    found = http.get("/api/v1/courses", params={"q": word[:-2]}, headers=learner)
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 2
    assert [item["id"] for item in found.json()["items"]] == [
        sequel["id"],
        course["id"],
    ]
    assert found.json()["items"][1]["lesson_count"] == 3
    assert walk_v2(http, learner, word) == [sequel["id"], course["id"]]

    enrolled = http.post(f"/api/v1/courses/{course['id']}/enrollments", headers=learner)
    again = http.post(f"/api/v1/courses/{course['id']}/enrollments", headers=learner)
    assert enrolled.status_code == 201, enrolled.text
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    enrollment = enrolled.json()
    path = f"/api/v1/enrollments/{enrollment['id']}"
    maps, stars, sun = (lesson["id"] for lesson in course["lessons"])

    partial = http.post(
        f"{path}/progress", json={"completed_lessons": [maps, stars]}, headers=learner
    )
    assert partial.status_code == 200, partial.text
    assert (partial.json()["progress"], partial.json()["status"]) == (66, "in_progress")
    early = http.post(f"{path}/complete", headers=learner)
    assert early.status_code == 409
    assert "1 of its 3 lesson(s) remain" in early.json()["detail"]

    rest = http.post(
        f"{path}/progress", json={"completed_lessons": [sun]}, headers=learner
    )
    assert rest.json()["progress"] == 100
    completed = http.post(f"{path}/complete", headers=learner)
    assert completed.status_code == 200, completed.text
    assert completed.json()["enrollment"]["status"] == "completed"
    certificate = completed.json()["certificate"]
    assert certificate["user_name"] == "Nora Navigator"
    assert certificate["course_title"] == f"Celestial {word}"

    mine = http.get("/api/v1/certificates/me", headers=learner)
    assert mine.status_code == 200
    assert mine.json()["items"] == [certificate]

    verified = http.get(f"/api/v1/certificates/{certificate['code']}/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json() == {
        "valid": True,
        "user_name": "Nora Navigator",
        "course_title": f"Celestial {word}",
        "issued_at": certificate["issued_at"],
    }
    unknown = http.get(f"/api/v1/certificates/{uuid.uuid4().hex}/verify")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


@allure.story("Enrollments are their owner's")
def test_another_learner_cannot_touch_an_enrollment(
    http: httpx.Client, stack: Endpoints
):
    course = publish_course(http, stack, f"Knots {uuid.uuid4().hex[:8]}")
    owner, intruder = register(http, "Olga Owner"), register(http, "Ivan Intruder")
    enrolled = http.post(f"/api/v1/courses/{course['id']}/enrollments", headers=owner)
    assert enrolled.status_code == 201, enrolled.text
    path = f"/api/v1/enrollments/{enrolled.json()['id']}"
    lessons = [lesson["id"] for lesson in course["lessons"]]

    progress = http.post(
        f"{path}/progress", json={"completed_lessons": lessons}, headers=intruder
    )
    complete = http.post(f"{path}/complete", headers=intruder)

    assert progress.status_code == 404
    assert complete.status_code == 404
    assert progress.json()["detail"] == complete.json()["detail"]
    # Other enrollments may come and go (an onboarding program): only this
    # course's matter here.
    theirs = http.get("/api/v1/enrollments/me", headers=intruder).json()["items"]
    assert course["id"] not in [e["course_id"] for e in theirs]
    mine = http.get("/api/v1/enrollments/me", headers=owner).json()["items"]
    assert [
        (e["id"], e["progress"]) for e in mine if e["course_id"] == course["id"]
    ] == [(enrolled.json()["id"], 0)]


@allure.story("API versions announce their successors")
def test_v1_course_listing_is_deprecated_in_favour_of_v2(http: httpx.Client) -> None:
    learner = register(http, "Vera Version")

    v1 = http.get("/api/v1/courses", params={"limit": 1}, headers=learner)
    refused = http.get("/api/v1/courses", params={"limit": 0}, headers=learner)
    v2 = http.get("/api/v2/courses", params={"limit": 1}, headers=learner)
    current = http.get("/api/v1/enrollments/me", headers=learner)

    assert (v1.status_code, refused.status_code) == (200, 422), v1.text
    for answer in (v1, refused):
        # RFC 9745: "@" and a Unix time; RFC 8594: an HTTP date.
        deprecated = re.fullmatch(r"@(\d+)", answer.headers.get("Deprecation", ""))
        assert deprecated, f"Deprecation is {answer.headers.get('Deprecation')!r}"
        sunset = parsedate_to_datetime(answer.headers["Sunset"])
        assert sunset > datetime.fromtimestamp(int(deprecated[1]), UTC)
        assert answer.headers["Link"] == '</api/v2/courses>; rel="successor-version"'
    # Routes without a newer version, and the newer version itself, are current.
    assert (v2.status_code, current.status_code) == (200, 200), v2.text
    for answer in (v2, current):
        assert "Deprecation" not in answer.headers
        assert "Sunset" not in answer.headers
