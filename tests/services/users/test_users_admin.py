"""The admins' routes: listing users and changing their roles and position."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
def admin_headers(identity: Any) -> dict[str, str]:
    # The gateway vouches for the caller; the admin need not be a stored user.
    return dict(identity(str(uuid.uuid4()), "learner", "admin"))


async def test_list_users_pages_oldest_first(
    client: httpx.AsyncClient, register: Any, admin_headers: dict[str, str], db: Any
):
    for _ in range(3):
        await register()
    total = await db.fetchval("SELECT count(*) FROM users.users")
    oldest = await db.fetch(
        "SELECT id FROM users.users ORDER BY created_at, id LIMIT 2 OFFSET 1"
    )

    response = await client.get(
        "/api/v1/users", params={"limit": 2, "offset": 1}, headers=admin_headers
    )

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == total
    assert [item["id"] for item in body["items"]] == [str(r["id"]) for r in oldest]
    assert set(body["items"][0]) == {
        "id",
        "email",
        "full_name",
        "roles",
        "position_id",
        "created_at",
    }


async def test_list_users_past_the_end_is_empty(
    client: httpx.AsyncClient, register: Any, admin_headers: dict[str, str]
):
    await register()

    response = await client.get(
        "/api/v1/users", params={"offset": 1_000_000}, headers=admin_headers
    )

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["total"] >= 1


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset")],
)
async def test_list_users_bad_paging_is_422_naming_it(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    params: dict[str, int],
    field: str,
):
    response = await client.get("/api/v1/users", params=params, headers=admin_headers)

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_list_users_as_learner_is_403(
    client: httpx.AsyncClient, register: Any, identity: Any
):
    user = await register()

    response = await client.get("/api/v1/users", headers=identity(user["id"]))

    assert response.status_code == 403
    assert response.json() == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "this route is for admins only",
    }


async def test_list_users_without_user_is_401(client: httpx.AsyncClient):
    response = await client.get("/api/v1/users")

    assert response.status_code == 401


async def test_patch_roles_and_the_next_token_carries_them(
    client: httpx.AsyncClient,
    register: Any,
    login: Any,
    admin_headers: dict[str, str],
):
    user = await register()

    response = await client.patch(
        f"/api/v1/users/{user['id']}",
        json={"roles": ["learner", "admin", "admin"]},
        headers=admin_headers,
    )

    assert response.status_code == 200
    assert response.json()["roles"] == ["learner", "admin"]
    token = (await login(user))["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["roles"] == ["learner", "admin"]


async def test_patch_position_sets_and_clears_it(
    client: httpx.AsyncClient, register: Any, admin_headers: dict[str, str]
):
    user = await register()
    position_id = str(uuid.uuid4())

    placed = await client.patch(
        f"/api/v1/users/{user['id']}",
        json={"position_id": position_id},
        headers=admin_headers,
    )
    unchanged = await client.patch(
        f"/api/v1/users/{user['id']}", json={}, headers=admin_headers
    )
    cleared = await client.patch(
        f"/api/v1/users/{user['id']}", json={"position_id": None}, headers=admin_headers
    )

    assert placed.status_code == unchanged.status_code == cleared.status_code == 200
    assert placed.json()["position_id"] == position_id
    assert placed.json()["roles"] == ["learner"]
    assert unchanged.json()["position_id"] == position_id
    assert cleared.json()["position_id"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"roles": ["learner", "teacher"]},
            "unknown role(s) 'teacher'; known roles: learner, admin",
        ),
        ({"roles": []}, "must list at least one of learner, admin"),
        ({"roles": None}, "must list at least one of learner, admin"),
    ],
)
async def test_patch_bad_roles_is_422_naming_roles(
    client: httpx.AsyncClient,
    register: Any,
    admin_headers: dict[str, str],
    body: dict[str, Any],
    message: str,
):
    user = await register()

    response = await client.patch(
        f"/api/v1/users/{user['id']}", json=body, headers=admin_headers
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "roles", "message": message}]


async def test_patch_unknown_field_is_422_naming_it(
    client: httpx.AsyncClient, register: Any, admin_headers: dict[str, str]
):
    user = await register()

    response = await client.patch(
        f"/api/v1/users/{user['id']}", json={"role": "admin"}, headers=admin_headers
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "role", "message": "Extra inputs are not permitted"}
    ]


async def test_patch_unknown_user_is_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
):
    user_id = uuid.uuid4()

    response = await client.patch(
        f"/api/v1/users/{user_id}", json={"roles": ["learner"]}, headers=admin_headers
    )

    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no user {user_id}"


async def test_patch_malformed_id_is_422_naming_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
):
    response = await client.patch(
        "/api/v1/users/42", json={"roles": ["learner"]}, headers=admin_headers
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "user_id"


async def test_patch_as_learner_is_403_and_changes_nothing(
    client: httpx.AsyncClient, register: Any, identity: Any
):
    user = await register()

    response = await client.patch(
        f"/api/v1/users/{user['id']}",
        json={"roles": ["learner", "admin"]},
        headers=identity(user["id"], "learner"),
    )

    assert response.status_code == 403
    me = await client.get("/api/v1/users/me", headers=identity(user["id"]))
    assert me.json()["roles"] == ["learner"]
