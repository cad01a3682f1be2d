"""Refresh-token rotation, reuse detection and logout."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

REUSED = (
    "the refresh token was already used; every token of its session is now "
    "revoked, log in again"
)


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_the_pair(
    client: httpx.AsyncClient, register: Any, login: Any, db: Any
):
    pair = await login(await register())

    rotated = await refresh(client, pair["refresh_token"])

    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["token_type"] == "Bearer"
    assert fresh["refresh_token"] != pair["refresh_token"]
    assert fresh["access_token"] != pair["access_token"]
    rows = await db.fetch(
        """
        SELECT token_hash, parent_id, id, family_id, used_at FROM users.refresh_tokens
        WHERE token_hash = ANY($1::bytea[])
        """,
        [
            hashlib.sha256(pair["refresh_token"].encode()).digest(),
            hashlib.sha256(fresh["refresh_token"].encode()).digest(),
        ],
    )
    old, new = sorted(rows, key=lambda row: row["parent_id"] is not None)
    assert old["used_at"] is not None
    assert new["used_at"] is None
    assert new["parent_id"] == old["id"]
    assert new["family_id"] == old["family_id"]


async def test_refresh_token_is_stored_only_as_its_hash(
    register: Any, login: Any, db: Any
):
    pair = await login(await register())

    stored = await db.fetchval(
        "SELECT count(*) FROM users.refresh_tokens WHERE token_hash = $1",
        hashlib.sha256(pair["refresh_token"].encode()).digest(),
    )
    as_text = await db.fetchval(
        "SELECT count(*) FROM users.refresh_tokens "
        "WHERE position(convert_to($1, 'UTF8') in token_hash) > 0",
        pair["refresh_token"],
    )

    assert stored == 1
    assert as_text == 0


async def test_refresh_reuse_revokes_the_whole_family(
    client: httpx.AsyncClient, register: Any, login: Any
):
    first = await login(await register())
    second = (await refresh(client, first["refresh_token"])).json()
    third = (await refresh(client, second["refresh_token"])).json()

    reused = await refresh(client, first["refresh_token"])

    assert reused.status_code == 401
    assert reused.headers["www-authenticate"] == "Bearer"
    assert reused.json()["detail"] == REUSED
    newest = await refresh(client, third["refresh_token"])
    assert newest.status_code == 401
    assert newest.json()["detail"] == "the refresh token has been revoked"


async def test_refresh_reuse_leaves_other_sessions_alone(
    client: httpx.AsyncClient, register: Any, login: Any
):
    user = await register()
    phone = await login(user)
    laptop = await login(user)
    await refresh(client, phone["refresh_token"])

    await refresh(client, phone["refresh_token"])

    assert (await refresh(client, laptop["refresh_token"])).status_code == 200


async def test_refresh_concurrent_with_one_token_succeeds_once(
    client: httpx.AsyncClient, register: Any, login: Any
):
    pair = await login(await register())

    responses = await asyncio.gather(
        *(refresh(client, pair["refresh_token"]) for _ in range(6))
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 401, 401, 401, 401, 401]


async def test_refresh_unknown_token_is_401(client: httpx.AsyncClient):
    response = await refresh(client, "not-a-token-we-issued")

    assert response.status_code == 401
    assert response.json()["detail"] == "the refresh token is unknown"


async def test_refresh_expired_token_is_401(
    client: httpx.AsyncClient, register: Any, login: Any, db: Any
):
    pair = await login(await register())
    await db.execute(
        "UPDATE users.refresh_tokens SET expires_at = now() - interval '1 second' "
        "WHERE token_hash = $1",
        hashlib.sha256(pair["refresh_token"].encode()).digest(),
    )

    response = await refresh(client, pair["refresh_token"])

    assert response.status_code == 401
    assert response.json()["detail"] == "the refresh token has expired"


async def test_refresh_token_lives_refresh_token_ttl(
    register: Any, login: Any, db: Any, settings: Any
):
    pair = await login(await register())

    lifetime = await db.fetchval(
        "SELECT expires_at - created_at FROM users.refresh_tokens "
        "WHERE token_hash = $1",
        hashlib.sha256(pair["refresh_token"].encode()).digest(),
    )

    assert lifetime.total_seconds() == pytest.approx(
        settings.refresh_token_ttl_s, abs=1
    )
    assert settings.refresh_token_ttl_s == 14 * 24 * 3600


async def test_refresh_empty_token_is_422(client: httpx.AsyncClient):
    response = await refresh(client, "")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "refresh_token"


async def test_logout_revokes_the_family(
    client: httpx.AsyncClient, register: Any, login: Any, identity: Any
):
    user = await register()
    first = await login(user)
    second = (await refresh(client, first["refresh_token"])).json()

    response = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": second["refresh_token"]},
        headers=identity(user["id"]),
    )

    assert response.status_code == 204
    assert response.content == b""
    after = await refresh(client, second["refresh_token"])
    assert after.status_code == 401
    assert after.json()["detail"] == "the refresh token has been revoked"


async def test_logout_with_another_users_token_is_404(
    client: httpx.AsyncClient, register: Any, login: Any, identity: Any
):
    owner = await register()
    pair = await login(owner)
    intruder = await register()

    response = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=identity(intruder["id"]),
    )

    assert response.status_code == 404
    assert response.json()["detail"] == "the caller has no such refresh token"
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_logout_unknown_token_is_404(
    client: httpx.AsyncClient, register: Any, identity: Any
):
    user = await register()

    response = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": "never-issued"},
        headers=identity(user["id"]),
    )

    assert response.status_code == 404


async def test_logout_without_user_is_401(
    client: httpx.AsyncClient, register: Any, login: Any
):
    pair = await login(await register())

    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
    )

    assert response.status_code == 401
    assert (await refresh(client, pair["refresh_token"])).status_code == 200
