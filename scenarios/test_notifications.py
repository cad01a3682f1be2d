"""Notifications end to end, through the gateway and the mail sink only.

Every email is awaited in the sink the stack runs, and every status through
the public API: registration welcomes, admins' announcements, program
assignments and certificates all reach the learner as real email, exactly
once. Another learner never sees someone else's notification.
"""

from __future__ import annotations

import uuid
from typing import Any

import allure
import httpx

from harness.endpoints import Endpoints
from harness.eventually import eventually
from harness.mailbox import Mailbox, Message

pytestmark = [allure.epic("Service contracts"), allure.feature("Notifications")]

PASSWORD = "correct-horse-42"
TIMEOUT_S = 30.0


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


def new_learner(http: httpx.Client, name: str) -> tuple[str, str, dict[str, str]]:
    """A learner who registered themselves: email, id and auth headers."""
    email = f"{name.split()[0].lower()}-{uuid.uuid4().hex}@example.org"
    response = http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": name},
    )
    assert response.status_code == 201, response.text
    return email, response.json()["id"], login(http, email, PASSWORD)


def my_notifications(http: httpx.Client, headers: dict[str, str]) -> list[Any]:
    response = http.get("/api/v1/notifications/me", headers=headers)
    response.raise_for_status()
    items: list[Any] = response.json()["items"]
    return items


def sent_of(
    http: httpx.Client, headers: dict[str, str], template: str, about: str = ""
) -> dict[str, Any]:
    """The caller's one notification of ``template`` whose subject contains
    ``about``, once it is sent."""

    def matching() -> list[Any]:
        return [
            i
            for i in my_notifications(http, headers)
            if i["template"] == template and about in i["subject"]
        ]

    found = eventually(
        matching,
        until=lambda found: any(i["status"] == "sent" for i in found),
        timeout_s=TIMEOUT_S,
        what=f"a sent {template} notification in GET /api/v1/notifications/me",
    )
    assert len(found) == 1, f"{len(found)} {template} notifications: {found}"
    return dict(found[0])


def only_mail(mailbox: Mailbox, to: str, subject: str) -> Message:
    """The one email to ``to`` about ``subject``. Asked once its notification
    is settled, when no attempt is left to make, so that a repeat would show."""
    found = mailbox.messages(to=to, subject=subject)
    received = [message.received_at for message in found]
    assert len(found) == 1, f"emails to {to} about {subject!r} received at {received}"
    return found[0]


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


@allure.story("A newcomer is welcomed by email")
def test_registration_sends_a_welcome_email(http: httpx.Client, mailbox: Mailbox):
    email, _, learner = new_learner(http, "Wendy Walker")

    mailbox.wait_for(to=email, subject="Welcome", timeout_s=TIMEOUT_S)
    welcome = sent_of(http, learner, "welcome")
    mail = only_mail(mailbox, email, "Welcome")

    assert mail.subject == "Welcome to Campus, Wendy Walker"
    assert mail.rcpt_tos == (email,)
    assert mail.to == f"Wendy Walker <{email}>"
    assert mail.body.startswith("Hello Wendy Walker,")
    assert welcome["subject"] == mail.subject
    assert welcome["sent_at"] is not None


@allure.story("An admin's message is queued, sent and tracked")
def test_admin_announcement_is_delivered_with_its_history(
    http: httpx.Client, stack: Endpoints, mailbox: Mailbox
):
    boss = admin(http, stack)
    email, user_id, learner = new_learner(http, "Ada Lind")
    subject = f"Campus closed on Friday ({uuid.uuid4().hex[:8]})"

    response = http.post(
        "/api/v1/notifications",
        json={
            "user_id": user_id,
            "template": "announcement",
            "data": {"subject": subject, "body": "The campus is closed on Friday."},
        },
        headers=boss,
    )

    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] == "queued"
    mailbox.wait_for(to=email, subject=subject, timeout_s=TIMEOUT_S)

    def detail() -> dict[str, Any]:
        found = http.get(f"/api/v1/notifications/{queued['id']}", headers=learner)
        found.raise_for_status()
        body: dict[str, Any] = found.json()
        return body

    body = eventually(
        detail,
        until=lambda body: body["status"] == "sent",
        timeout_s=TIMEOUT_S,
        what=f"notification {queued['id']} to show status sent",
    )
    mail = only_mail(mailbox, email, subject)
    assert mail.body.startswith("Hello Ada Lind,\n\nThe campus is closed on Friday.")
    assert body["subject"] == subject
    assert body["user_id"] == user_id
    assert [entry["status"] for entry in body["history"]] == ["queued", "sent"]
    queued_at, sent_at = (entry["at"] for entry in body["history"])
    assert queued_at <= sent_at
    assert body["sent_at"] is not None
    seen_by_admin = http.get(f"/api/v1/notifications/{queued['id']}", headers=boss)
    assert seen_by_admin.status_code == 200
    assert seen_by_admin.json()["id"] == queued["id"]


@allure.story("Notifications are their recipient's")
def test_learner_cannot_read_another_users_notification(
    http: httpx.Client, stack: Endpoints
):
    boss = admin(http, stack)
    _, ada_id, ada = new_learner(http, "Ada Lind")
    _, _, bob = new_learner(http, "Bob Marsh")
    response = http.post(
        "/api/v1/notifications",
        json={
            "user_id": ada_id,
            "template": "announcement",
            "data": {"subject": "For Ada", "body": "Only for Ada."},
        },
        headers=boss,
    )
    assert response.status_code == 202, response.text
    notification_id = response.json()["id"]

    as_bob = http.get(f"/api/v1/notifications/{notification_id}", headers=bob)
    as_ada = http.get(f"/api/v1/notifications/{notification_id}", headers=ada)
    bob_triggers = http.post(
        "/api/v1/notifications",
        json={"user_id": ada_id, "template": "welcome", "data": {}},
        headers=bob,
    )

    assert as_bob.status_code == 404
    assert as_bob.headers["content-type"] == "application/problem+json"
    assert as_bob.json()["detail"] == f"there is no notification {notification_id}"
    assert as_ada.status_code == 200
    assert all(i["id"] != notification_id for i in my_notifications(http, bob))
    assert bob_triggers.status_code == 403


@allure.story("An assignment is announced by email")
def test_program_assignment_sends_an_email(
    http: httpx.Client, stack: Endpoints, mailbox: Mailbox
):
    boss = admin(http, stack)
    email, user_id, learner = new_learner(http, "Pia Park")
    course = new_course(http, boss, "Forklift basics", ["Controls", "Loads"])
    title = f"Warehouse crew {uuid.uuid4().hex[:8]}"
    created = http.post(
        "/api/v1/programs",
        json={"title": title, "course_ids": [course["id"]], "onboarding": False},
        headers=boss,
    )
    assert created.status_code == 201, created.text

    assigned = http.post(
        f"/api/v1/programs/{created.json()['id']}/assignments",
        json={"user_ids": [user_id]},
        headers=boss,
    )

    assert assigned.status_code == 201, assigned.text
    mailbox.wait_for(to=email, subject=title, timeout_s=TIMEOUT_S)
    notification = sent_of(http, learner, "program_assigned", title)
    mail = only_mail(mailbox, email, title)
    assert mail.subject == f"New program for you: {title}"
    assert f"you have been assigned the program \u201c{title}\u201d." in mail.body
    assert "It has no due date." in mail.body
    assert notification["subject"] == mail.subject


@allure.story("A certificate arrives by email")
def test_course_completion_emails_the_certificate_code(
    http: httpx.Client, stack: Endpoints, mailbox: Mailbox
):
    boss = admin(http, stack)
    email, _, learner = new_learner(http, "Cem Ozturk")
    title = f"First aid {uuid.uuid4().hex[:8]}"
    course = new_course(http, boss, title, ["Recovery position", "CPR"])
    enrolled = http.post(f"/api/v1/courses/{course['id']}/enrollments", headers=learner)
    assert enrolled.status_code == 201, enrolled.text
    enrollment_id = enrolled.json()["id"]
    lessons = http.get(f"/api/v1/courses/{course['id']}", headers=learner).json()
    progressed = http.post(
        f"/api/v1/enrollments/{enrollment_id}/progress",
        json={"completed_lessons": [lesson["id"] for lesson in lessons["lessons"]]},
        headers=learner,
    )
    assert progressed.status_code == 200, progressed.text

    completed = http.post(
        f"/api/v1/enrollments/{enrollment_id}/complete", headers=learner
    )

    assert completed.status_code == 200, completed.text
    code = completed.json()["certificate"]["code"]
    mailbox.wait_for(to=email, subject=title, timeout_s=TIMEOUT_S)
    notification = sent_of(http, learner, "certificate_issued", title)
    mail = only_mail(mailbox, email, title)
    assert mail.subject == f"Your certificate for {title}"
    assert f"verification code is {code}." in mail.body
    verify_path = f"/api/v1/certificates/{code}/verify"
    assert verify_path in mail.body
    verified = http.get(verify_path)
    assert verified.status_code == 200, verified.text
    assert verified.json()["valid"] is True
    assert notification["subject"] == mail.subject
