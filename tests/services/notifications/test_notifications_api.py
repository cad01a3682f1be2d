"""The public API: admin triggers, the caller's notifications, one in detail,
who may see what, and the health probes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from notifications_testkit import (
    ADMIN,
    ADMIN_ID,
    Serve,
    UsersStandIn,
    as_user,
    eventually,
    new_address,
)
from starlette.responses import JSONResponse, Response

from harness.mailbox import Mailbox
from services.notifications.settings import Settings

pytestmark = pytest.mark.anyio

ANNOUNCEMENT = {"subject": "Library closed Friday", "body": "The library is closed."}


async def announce(
    http: httpx.AsyncClient, user_id: str, data: dict[str, Any] | None = None
) -> httpx.Response:
    return await http.post(
        "/api/v1/notifications",
        json={
            "user_id": user_id,
            "template": "announcement",
            "data": data or ANNOUNCEMENT,
        },
        headers=ADMIN,
    )


async def detail(http: httpx.AsyncClient, notification_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/notifications/{notification_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(http: httpx.AsyncClient, notification_id: str) -> dict[str, Any]:
    return await eventually(
        lambda: detail(http, notification_id),
        until=lambda body: body["status"] != "queued",
        what=f"notification {notification_id} to be sent or to fail",
    )


async def test_announcement_is_queued_then_sent_with_history(
    settings: Settings, serve: Serve, users: UsersStandIn, mailbox: Mailbox
):
    email = new_address()
    user_id = users.add(email, "Ann Lee")

    async with serve(settings) as http:
        response = await announce(http, user_id)
        assert response.status_code == 202
        queued = response.json()
        assert set(queued) == {"id", "status"}
        assert queued["status"] == "queued"
        body = await settled(http, queued["id"])

    # Asked once the notification is settled, so that a repeat would show.
    mails = mailbox.messages(to=email)
    assert len(mails) == 1, mails
    [mail] = mails
    assert mail.subject == "Library closed Friday"
    assert mail.rcpt_tos == (email,)
    assert mail.to == f"Ann Lee <{email}>"
    assert mail.sender == "Campus <noreply@campus.test>"
    assert mail.mail_from == "noreply@campus.test"
    assert mail.body.startswith("Hello Ann Lee,\n\nThe library is closed.\n")
    assert mail.header("Message-ID") == f"<{queued['id']}@campus.test>"
    assert mail.header("X-Campus-Notification-Id") == queued["id"]

    assert body["id"] == queued["id"]
    assert body["user_id"] == user_id
    assert body["template"] == "announcement"
    assert body["subject"] == "Library closed Friday"
    assert body["body"] == mail.body
    assert body["status"] == "sent"
    assert body["failed_reason"] is None
    assert body["attempts"] == 1
    assert body["sent_at"] is not None
    assert [(h["status"], h["attempt"]) for h in body["history"]] == [
        ("queued", None),
        ("sent", 1),
    ]
    queued_at, sent_at = (entry["at"] for entry in body["history"])
    assert body["created_at"] <= queued_at <= sent_at
    assert body["history"][0]["detail"] == f"queued by admin {ADMIN_ID}"
    assert body["history"][1]["detail"].startswith(
        f"accepted by the SMTP server at 127.0.0.1:{settings.smtp_port}: "
    )


async def test_trigger_for_unknown_template_is_422_naming_it(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    user_id = users.add(new_address())

    async with serve(settings, workers=False) as http:
        response = await http.post(
            "/api/v1/notifications",
            json={"user_id": user_id, "template": "birthday", "data": {}},
            headers=ADMIN,
        )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    message = (
        "there is no template 'birthday'; the templates are announcement, "
        "certificate_issued, program_assigned, welcome"
    )
    assert problem["errors"] == [{"field": "template", "message": message}]
    assert problem["detail"] == f"the request is invalid: template: {message}"


async def test_trigger_with_missing_data_is_422_naming_each_field(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    user_id = users.add(new_address())

    async with serve(settings, workers=False) as http:
        response = await announce(http, user_id, {"subject": "  ", "extra": 1})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "data.subject", "message": "must be a non-empty string"},
        {"field": "data.body", "message": "is missing"},
    ]


async def test_trigger_for_unknown_user_is_422(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    stranger = str(uuid.uuid4())

    async with serve(settings, workers=False) as http:
        response = await announce(http, stranger)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "user_id", "message": f"there is no user {stranger}"}
    ]
    assert users.asked == [stranger]


async def test_trigger_when_users_service_fails_is_503(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    user_id = users.add(new_address())
    users.failing = True

    async with serve(settings, workers=False) as http:
        response = await announce(http, user_id)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        f"cannot look up user {user_id}: the users service did not answer "
        "/internal/users; try again shortly"
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            JSONResponse({"detail": "no"}, status_code=404),
            "the users service answered 404 to /internal/users",
        ),
        (
            Response("<html>", media_type="text/html"),
            "the users service's answer to /internal/users is not JSON",
        ),
        (
            JSONResponse({"users": []}),
            "the users service's answer to /internal/users has no items list",
        ),
    ],
)
async def test_trigger_when_users_service_answers_oddly_is_503(
    settings: Settings, serve: Serve, users: UsersStandIn, answer: Response, reason: str
):
    user_id = users.add(new_address())
    users.answer = answer

    async with serve(settings, workers=False) as http:
        response = await announce(http, user_id)

    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"cannot look up user {user_id}: {reason}; try again shortly"
    )


async def test_trigger_remembers_the_recipient(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    user_id = users.add(new_address())

    async with serve(settings, workers=False) as http:
        first = await announce(http, user_id)
        second = await announce(http, user_id)

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]
    assert users.asked == [user_id]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "nope", "template": "announcement", "data": {}}, "user_id"),
        ({"template": "announcement", "data": {}}, "user_id"),
        ({"user_id": str(uuid.uuid4()), "template": "", "data": {}}, "template"),
        ({"user_id": str(uuid.uuid4()), "template": "welcome", "data": []}, "data"),
        ({"user_id": str(uuid.uuid4()), "template": "welcome", "cc": "x"}, "cc"),
    ],
)
async def test_trigger_with_malformed_body_is_422(
    settings: Settings, serve: Serve, body: dict[str, Any], field: str
):
    async with serve(settings, workers=False) as http:
        response = await http.post("/api/v1/notifications", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_trigger_by_learner_is_403_and_anonymous_is_401(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    user_id = users.add(new_address())

    async with serve(settings, workers=False) as http:
        learner = await http.post(
            "/api/v1/notifications",
            json={"user_id": user_id, "template": "welcome", "data": {}},
            headers=as_user(user_id),
        )
        anonymous = await http.post(
            "/api/v1/notifications",
            json={"user_id": user_id, "template": "welcome", "data": {}},
        )

    assert learner.status_code == 403
    assert learner.json()["detail"] == "this route is for admins only"
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"


async def test_notification_is_visible_to_recipient_and_admin_only(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    recipient = users.add(new_address())
    other = users.add(new_address("bob"))

    async with serve(settings, workers=False) as http:
        notification_id = (await announce(http, recipient)).json()["id"]
        path = f"/api/v1/notifications/{notification_id}"
        as_recipient = await http.get(path, headers=as_user(recipient))
        as_admin = await http.get(path, headers=ADMIN)
        as_other = await http.get(path, headers=as_user(other))
        absent_id = uuid.uuid4()
        absent = await http.get(
            f"/api/v1/notifications/{absent_id}", headers=as_user(other)
        )
        anonymous = await http.get(path)

    assert as_recipient.status_code == 200
    assert as_recipient.json() == as_admin.json()
    assert as_recipient.json()["status"] == "queued"
    assert as_other.status_code == 404
    assert as_other.json()["detail"] == f"there is no notification {notification_id}"
    assert absent.status_code == 404
    assert absent.json()["detail"] == f"there is no notification {absent_id}"
    assert anonymous.status_code == 401


async def test_my_notifications_are_mine_newest_first(
    settings: Settings, serve: Serve, users: UsersStandIn
):
    mine = users.add(new_address())
    theirs = users.add(new_address("bob"))

    async with serve(settings, workers=False) as http:
        first = (await announce(http, mine, {"subject": "One", "body": "1"})).json()
        await announce(http, theirs)
        second = (await announce(http, mine, {"subject": "Two", "body": "2"})).json()
        listed = await http.get("/api/v1/notifications/me", headers=as_user(mine))
        limited = await http.get(
            "/api/v1/notifications/me", params={"limit": 1}, headers=as_user(mine)
        )
        stranger = await http.get(
            "/api/v1/notifications/me", headers=as_user(uuid.uuid4())
        )

    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [second["id"], first["id"]]
    assert set(items[0]) == {
        "id",
        "template",
        "subject",
        "status",
        "created_at",
        "sent_at",
    }
    assert items[0]["subject"] == "Two"
    assert items[0]["template"] == "announcement"
    assert items[0]["status"] == "queued"
    assert items[0]["sent_at"] is None
    assert [item["id"] for item in limited.json()["items"]] == [second["id"]]
    assert stranger.json() == {"items": []}


async def test_my_notifications_with_bad_limit_is_422(settings: Settings, serve: Serve):
    async with serve(settings, workers=False) as http:
        response = await http.get(
            "/api/v1/notifications/me",
            params={"limit": 0},
            headers=as_user(uuid.uuid4()),
        )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


async def test_notification_with_malformed_id_is_422(settings: Settings, serve: Serve):
    async with serve(settings, workers=False) as http:
        response = await http.get("/api/v1/notifications/nope", headers=ADMIN)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "notification_id"


async def test_health_and_readiness(settings: Settings, serve: Serve):
    async with serve(settings, workers=False) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
