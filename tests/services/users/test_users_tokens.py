"""Access tokens, the JWKS that verifies them, and key rotation without restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services.users.app import create_app
from services.users.keys import create_key
from services.users.settings import Settings

pytestmark = pytest.mark.anyio

# As the conftest's settings fixture has them.
ISSUER = "campus-users-test"
AUDIENCE = "campus-api-test"


async def jwks(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def verify(token: str, keys: dict[str, Any]) -> dict[str, Any]:
    """Verify ``token`` the way a gateway would: by its kid, against the JWKS."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(keys)[kid]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["sub", "roles", "iat", "nbf", "exp", "jti"]},
    )
    return claims


async def test_jwks_publishes_the_signing_key(
    client: httpx.AsyncClient, keys_dir: Path
):
    body = await jwks(client)

    (kid,) = [path.stem for path in keys_dir.glob("*.pem")]
    (key,) = body["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert key["kid"] == kid
    assert key["alg"] == "ES256"
    assert key["use"] == "sig"
    assert "d" not in key


async def test_access_token_verifies_with_the_jwks(
    client: httpx.AsyncClient, register: Any, login: Any
):
    user = await register()
    first = await login(user)
    second = await login(user)

    claims = verify(first["access_token"], await jwks(client))

    assert jwt.get_unverified_header(first["access_token"])["alg"] == "ES256"
    assert claims["sub"] == user["id"]
    assert claims["roles"] == ["learner"]
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"] != verify(second["access_token"], await jwks(client))["jti"]


async def test_refreshed_access_token_verifies_and_carries_roles(
    client: httpx.AsyncClient, register: Any, login: Any
):
    user = await register()
    pair = await login(user)

    fresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )

    claims = verify(fresh.json()["access_token"], await jwks(client))
    assert claims["sub"] == user["id"]
    assert claims["roles"] == ["learner"]


async def test_access_token_lifetime_follows_the_setting(
    settings: Settings, register: Any
):
    short = dataclasses.replace(settings, access_token_ttl_s=60)
    app = create_app(short)
    user = await register()

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://users"
        ) as client,
    ):
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": user["email"], "password": user["password"]},
        )
        claims = verify(response.json()["access_token"], await jwks(client))

    assert response.json()["expires_in"] == 60
    assert claims["exp"] - claims["iat"] == 60


async def test_rotation_signs_with_the_new_key_and_old_tokens_still_verify(
    client: httpx.AsyncClient,
    keys_dir: Path,
    register: Any,
    login: Any,
    eventually: Any,
):
    user = await register()
    before = await login(user)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]

    new_kid = create_key(keys_dir).kid
    published = await eventually(
        lambda: jwks(client),
        lambda body: new_kid in {key["kid"] for key in body["keys"]},
        what=f"key {new_kid} in the JWKS",
    )
    after = await eventually(
        lambda: login(user),
        lambda pair: jwt.get_unverified_header(pair["access_token"])["kid"] == new_kid,
        what=f"tokens signed by {new_kid} once it is old enough",
    )

    assert new_kid > old_kid
    assert {key["kid"] for key in published["keys"]} == {old_kid, new_kid}
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    assert verify(after["access_token"], published)["sub"] == user["id"]
    assert verify(before["access_token"], published)["sub"] == user["id"]


async def test_removed_key_leaves_the_jwks(
    client: httpx.AsyncClient, keys_dir: Path, eventually: Any
):
    (old_file,) = keys_dir.glob("*.pem")
    new_kid = create_key(keys_dir).kid

    old_file.unlink()
    published = await eventually(
        lambda: jwks(client),
        lambda body: [key["kid"] for key in body["keys"]] == [new_kid],
        what=f"only {new_kid} in the JWKS",
    )

    assert len(published["keys"]) == 1
