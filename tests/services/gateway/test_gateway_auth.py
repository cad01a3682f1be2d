"""Tokens and roles through a running gateway, with keys from a real JWKS URL."""

from __future__ import annotations

import time
from contextlib import ExitStack

from gateway_testkit import EchoApp, GatewayFactory, SigningKey, serving

POLL_TIMEOUT_S = 5.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_auth_rejects_missing_token_with_bearer_challenge(
    gateway: GatewayFactory,
) -> None:
    answer = gateway().get("/api/v1/users/me", headers={"X-Request-ID": "req-401"})

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="campus"'
    assert answer.headers["x-request-id"] == "req-401"
    assert answer.json()["detail"] == (
        "this route needs an access token: send Authorization: Bearer <token>"
    )


def test_auth_rejects_bad_token_with_invalid_token_error(
    gateway: GatewayFactory,
) -> None:
    answer = gateway().get("/api/v1/users/me", headers=bearer("not.a.token"))

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="campus", error="invalid_token"'
    )
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == (
        "the access token was rejected: the token's header is not base64url JSON"
    )


def test_auth_rejects_expired_token(
    gateway: GatewayFactory, signing_key: SigningKey
) -> None:
    token = signing_key.sign(exp=int(time.time()) - 60)

    answer = gateway().get("/api/v1/users/me", headers=bearer(token))

    assert answer.status_code == 401
    assert answer.json()["detail"] == (
        "the access token was rejected: the token has expired"
    )


def test_auth_forbids_admin_route_to_learner(
    gateway: GatewayFactory, signing_key: SigningKey
) -> None:
    token = signing_key.sign(roles=["learner"])

    answer = gateway().patch("/api/v1/users/u1", headers=bearer(token), json={})

    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "/api/v1/users/{id} needs the admin role; the token has roles ['learner']"
    )


def test_auth_lets_admin_through_admin_route(
    gateway: GatewayFactory, signing_key: SigningKey
) -> None:
    token = signing_key.sign(roles=["learner", "admin"])

    answer = gateway().patch("/api/v1/users/u1", headers=bearer(token), json={})

    assert answer.status_code == 200
    assert answer.json()["raw_path"] == "/api/v1/users/u1"


def test_auth_serves_cached_keys_while_jwks_url_is_down(
    gateway: GatewayFactory, signing_key: SigningKey
) -> None:
    jwks = EchoApp("jwks", jwks={"keys": [signing_key.jwk()]})
    with ExitStack() as jwks_server:
        jwks_url = jwks_server.enter_context(serving(jwks))
        client = gateway(jwks_url=f"{jwks_url}/.well-known/jwks.json")
    # The JWKS server is gone; a token the gateway has never seen still verifies.
    token = signing_key.sign(sub="user-after-outage")

    answer = client.get("/api/v1/users/me", headers=bearer(token))

    assert jwks.jwks_fetches == 1
    assert answer.status_code == 200
    assert answer.json()["headers"].count(["x-user-id", "user-after-outage"]) == 1


def test_auth_refetches_jwks_for_unknown_kid(
    gateway: GatewayFactory, users: tuple[EchoApp, str], signing_key: SigningKey
) -> None:
    client = gateway()
    rotated = SigningKey("key-2")
    users[0].jwks = {"keys": [signing_key.jwk(), rotated.jwk()]}

    answer = client.get("/api/v1/users/me", headers=bearer(rotated.sign()))

    assert answer.status_code == 200
    assert users[0].jwks_fetches == 2


def test_auth_rejects_kid_that_no_jwks_has_after_one_refetch(
    gateway: GatewayFactory, users: tuple[EchoApp, str]
) -> None:
    client = gateway()
    stranger = SigningKey("nobody-publishes-this")

    answer = client.get("/api/v1/users/me", headers=bearer(stranger.sign()))

    assert answer.status_code == 401
    assert answer.json()["detail"] == (
        "the access token was rejected: "
        "no published signing key has kid 'nobody-publishes-this'"
    )
    assert users[0].jwks_fetches == 2  # at start-up, then for the unknown kid


def test_auth_refreshes_keys_in_background(
    gateway: GatewayFactory, users: tuple[EchoApp, str]
) -> None:
    gateway(jwks_refresh_s=0.05)

    deadline = time.monotonic() + POLL_TIMEOUT_S
    while users[0].jwks_fetches < 3 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert users[0].jwks_fetches >= 3


def test_auth_rejects_tokens_while_jwks_url_answers_errors(
    gateway: GatewayFactory, users: tuple[EchoApp, str], signing_key: SigningKey
) -> None:
    users[0].jwks_status = 500
    client = gateway()

    answer = client.get("/api/v1/users/me", headers=bearer(signing_key.sign()))

    assert answer.status_code == 401
    assert answer.json()["detail"] == (
        "the access token was rejected: no published signing key has kid 'key-1'"
    )
