"""Accounts and sessions, end to end through the gateway only.

Every user is new (a unique email per test); the admin is the one the stack
bootstraps from its settings.
"""

from __future__ import annotations

import uuid
from typing import Any

import allure
import httpx

from harness.endpoints import Endpoints
from harness.exchanges import Redacted

pytestmark = [allure.epic("Service contracts"), allure.feature("Accounts and sign-in")]

SIGN_UP = allure.story("Signing up and logging in")
SESSIONS = allure.story("Sessions: refresh, reuse and log out")
ADMINS = allure.story("Admins manage users and roles")
TOKENS = allure.story("Tokens anyone can check and no one can forge")

PASSWORD = "correct-horse-42"


def new_email() -> str:
    return f"learner-{uuid.uuid4().hex}@example.org"


def register(
    http: httpx.Client, email: str, password: str = PASSWORD
) -> httpx.Response:
    return http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "full_name": "Lea Learner"},
    )


def login(http: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """The token pair of a log-in, shown redacted if a failure prints it."""
    __tracebackhide__ = True  # its arguments may be the admin's credentials
    response = http.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return Redacted(response.json())


def refresh(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/api/v1/auth/refresh", json={"refresh_token": token})


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return Redacted(Authorization=f"Bearer {pair['access_token']}")


def new_learner(http: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """A registered learner and its first token pair."""
    email = new_email()
    registered = register(http, email)
    assert registered.status_code == 201, registered.text
    return registered.json(), login(http, email)


@SIGN_UP
def test_register_login_me(http: httpx.Client):
    email = new_email()

    registered = register(http, email)
    pair = login(http, email)
    me = http.get("/api/v1/users/me", headers=bearer(pair))

    assert registered.status_code == 201
    user = registered.json()
    assert user["email"] == email
    assert user["roles"] == ["learner"]
    assert pair["token_type"] == "Bearer"
    assert 0 < pair["expires_in"] <= 900
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert me.json()["email"] == email
    assert me.json()["position_id"] is None


@TOKENS
def test_me_without_token_is_401(http: httpx.Client):
    response = http.get("/api/v1/users/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


@SESSIONS
def test_refresh_rotates_and_reuse_kills_the_family(http: httpx.Client):
    _, first = new_learner(http)

    rotated = refresh(http, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert http.get("/api/v1/users/me", headers=bearer(second)).status_code == 200

    reused = refresh(http, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.headers["content-type"] == "application/problem+json"

    newest = refresh(http, second["refresh_token"])
    assert newest.status_code == 401


@SESSIONS
def test_logout_ends_the_session(http: httpx.Client):
    _, pair = new_learner(http)

    response = http.post(
        "/api/v1/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=bearer(pair),
    )

    assert response.status_code == 204
    assert refresh(http, pair["refresh_token"]).status_code == 401


@SESSIONS
def test_logout_needs_a_token(http: httpx.Client):
    _, pair = new_learner(http)

    response = http.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
    )

    assert response.status_code == 401
    assert refresh(http, pair["refresh_token"]).status_code == 200


@SIGN_UP
def test_duplicate_email_is_409(http: httpx.Client):
    email = new_email()
    assert register(http, email).status_code == 201

    again = register(http, email.upper(), "another-pass-7")

    assert again.status_code == 409
    body = again.json()
    assert body["status"] == 409
    assert {"type", "title", "detail"} <= set(body)


@SIGN_UP
def test_weak_password_is_422_naming_the_field(http: httpx.Client):
    response = register(http, new_email(), "password")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"password"}


@SIGN_UP
def test_bad_credentials_are_401(http: httpx.Client):
    email = new_email()
    assert register(http, email).status_code == 201

    response = http.post(
        "/api/v1/auth/login", json={"email": email, "password": "wrong-pass-1"}
    )

    assert response.status_code == 401
    assert response.json()["detail"] == "the email or password is incorrect"


@ADMINS
def test_user_list_is_for_admins_only(http: httpx.Client, stack: Endpoints):
    _, learner = new_learner(http)
    admin = login(http, stack.settings["admin_email"], stack.settings["admin_password"])

    as_learner = http.get("/api/v1/users", headers=bearer(learner))
    as_admin = http.get("/api/v1/users", params={"limit": 5}, headers=bearer(admin))

    assert as_learner.status_code == 403
    assert as_admin.status_code == 200
    page = as_admin.json()
    assert page["total"] >= 2
    assert len(page["items"]) <= 5


@ADMINS
def test_admin_grants_a_role_that_the_next_token_carries(
    http: httpx.Client, stack: Endpoints
):
    user, learner = new_learner(http)
    admin = login(http, stack.settings["admin_email"], stack.settings["admin_password"])

    changed = http.patch(
        f"/api/v1/users/{user['id']}",
        json={"roles": ["learner", "admin"]},
        headers=bearer(admin),
    )
    fresh = refresh(http, learner["refresh_token"]).json()

    assert changed.status_code == 200
    assert changed.json()["roles"] == ["learner", "admin"]
    assert http.get("/api/v1/users", headers=bearer(fresh)).status_code == 200


@TOKENS
def test_forged_identity_headers_do_not_make_an_admin(http: httpx.Client):
    user, learner = new_learner(http)
    forged = Redacted(
        bearer(learner),
        **{"X-User-Id": str(uuid.uuid4()), "X-User-Roles": "admin",
           "X-Campus-Roles": "admin"},
    )  # fmt: skip

    listed = http.get("/api/v1/users", headers=forged)
    me = http.get("/api/v1/users/me", headers=forged)

    assert listed.status_code == 403
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert me.json()["roles"] == ["learner"]


@TOKENS
def test_jwks_is_public_through_the_gateway(http: httpx.Client):
    response = http.get("/.well-known/jwks.json")

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    assert all(key["alg"] == "ES256" and key["use"] == "sig" for key in keys)
    assert all("d" not in key for key in keys)
