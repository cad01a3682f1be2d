"""Registration, login and the caller's profile."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from services.users import accounts

pytestmark = pytest.mark.anyio


async def test_register_then_login_then_me(client: httpx.AsyncClient, identity: Any):
    email = f"Ann.Lee-{uuid.uuid4().hex[:8]}@Example.org"
    registered = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "correct-horse-9", "full_name": " Ann Lee "},
    )
    assert registered.status_code == 201
    user = registered.json()
    assert set(user) == {"id", "email", "full_name", "roles"}
    assert user["email"] == email
    assert user["full_name"] == "Ann Lee"
    assert user["roles"] == ["learner"]

    login = await client.post(
        "/api/v1/auth/login",
        json={"email": email.upper(), "password": "correct-horse-9"},
    )
    assert login.status_code == 200
    pair = login.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900

    me = await client.get("/api/v1/users/me", headers=identity(user["id"]))
    assert me.status_code == 200
    profile = me.json()
    assert profile["id"] == user["id"]
    assert profile["email"] == email
    assert profile["roles"] == ["learner"]
    assert profile["position_id"] is None


async def test_register_email_taken_in_other_case_is_409(
    client: httpx.AsyncClient, register: Any
):
    user = await register()

    again = await client.post(
        "/api/v1/auth/register",
        json={
            "email": user["email"].upper(),
            "password": "another-pass-1",
            "full_name": "Someone Else",
        },
    )

    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": f"the email {user['email'].upper()!r} is already registered",
    }


@pytest.mark.parametrize(
    ("password", "messages"),
    [
        ("short-1", ["must be at least 10 characters long"]),
        ("onlyletterslong", ["must mix letters with at least one digit or symbol"]),
        ("1234567890123", ["must mix letters with at least one digit or symbol"]),
        (
            "abc",
            [
                "must be at least 10 characters long",
                "must mix letters with at least one digit or symbol",
            ],
        ),
        ("x" * 1024 + "1", ["must be at most 1024 characters long"]),
    ],
)
async def test_register_weak_password_is_422_naming_password(
    client: httpx.AsyncClient, password: str, messages: list[str]
):
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "weak@example.org", "password": password, "full_name": "W"},
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"] == [{"field": "password", "message": m} for m in messages]
    assert body["title"] == "Unprocessable Entity"
    assert body["detail"].startswith("the request is invalid: password: ")
    assert password not in response.text


async def test_register_password_equal_to_email_is_422(client: httpx.AsyncClient):
    email = "ann.lee-7@example.org"

    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": email.upper(), "full_name": "Ann"},
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "password", "message": "must not be the email address"}
    ]


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("no-at-sign", "must be an email address like name@example.org"),
        ("@example.org", "must be an email address like name@example.org"),
        ("ann@", "must be an email address like name@example.org"),
        ("ann lee@example.org", "has an invalid part before the @"),
        ("ann..lee@example.org", "has an invalid part before the @"),
        ("ann@@example.org", "has an invalid part before the @"),
        ("ann@localhost", "has an invalid domain after the @"),
        ("ann@-bad-.org", "has an invalid domain after the @"),
        ("ann@example.c0m", "has an invalid domain after the @"),
        ("a" * 250 + "@example.org", "must be at most 254 characters"),
    ],
)
async def test_register_bad_email_is_422_naming_email(
    client: httpx.AsyncClient, email: str, message: str
):
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "correct-horse-9", "full_name": "Ann"},
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "email", "message": message}]


async def test_register_missing_fields_is_422_naming_them(client: httpx.AsyncClient):
    response = await client.post(
        "/api/v1/auth/register", json={"email": "x@example.org", "full_name": "  "}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [
        {"field": "password", "message": "Field required"},
        {
            "field": "full_name",
            "message": "String should have at least 1 character",
        },
    ]
    assert body["detail"] == (
        "the request is invalid: password: Field required; "
        "full_name: String should have at least 1 character"
    )


async def test_register_name_with_nul_is_422_naming_full_name(
    client: httpx.AsyncClient,
):
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": "nul@example.org",
            "password": "nul-byte-name-9",
            "full_name": "A\x00B",
        },
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "full_name",
            "message": "must not contain the NUL character (U+0000)",
        }
    ]


async def test_register_body_not_json_is_422(client: httpx.AsyncClient):
    response = await client.post(
        "/api/v1/auth/register",
        content=b"email=x",
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "body", "message": "is not valid JSON: Expecting value"}
    ]


async def test_login_wrong_password_and_unknown_email_answer_alike(
    client: httpx.AsyncClient, register: Any
):
    user = await register()

    wrong = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": "wrong-pass-1"}
    )
    unknown = await client.post(
        "/api/v1/auth/login",
        json={"email": f"nobody-{uuid.uuid4().hex}@example.org", "password": "x1"},
    )

    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "the email or password is incorrect",
        }
    )
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_login_rehashes_a_password_hashed_with_old_parameters(
    client: httpx.AsyncClient, db: Any
):
    email = f"old-{uuid.uuid4().hex[:8]}@example.org"
    old_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(
        "correct-horse-9"
    )
    user = await accounts.create(
        db, email=email, password_hash=old_hash, full_name="Old Timer"
    )

    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": "correct-horse-9"}
    )

    assert response.status_code == 200
    stored = await db.fetchval(
        "SELECT password_hash FROM users.users WHERE id = $1", user.id
    )
    assert stored != old_hash
    assert not PasswordHasher().check_needs_rehash(stored)
    assert PasswordHasher().verify(stored, "correct-horse-9")


async def test_me_without_user_id_is_401(client: httpx.AsyncClient):
    response = await client.get("/api/v1/users/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == (
        "this route needs an authenticated user; send an access token"
    )


async def test_me_with_malformed_user_id_is_401(client: httpx.AsyncClient):
    response = await client.get("/api/v1/users/me", headers={"X-User-Id": "42"})

    assert response.status_code == 401
    assert response.json()["detail"] == "the X-User-Id header is not a user id"


async def test_me_of_unknown_user_is_404(client: httpx.AsyncClient, identity: Any):
    user_id = str(uuid.uuid4())

    response = await client.get("/api/v1/users/me", headers=identity(user_id))

    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no user {user_id}"
