"""Tokens and roles through a running gateway, with keys from a real JWKS URL."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import pytest
from gateway_testkit import (
    EchoApp,
    GatewayFactory,
    SigningKey,
    closed_port_url,
    serving,
)

from services.common.logs import REQUEST_LOGGER

ME = "/api/v1/users/me"
POLL_TIMEOUT_S = 5.0
# The gateway's pause between fetches for unknown kids, in the flood test.
REFETCH_S = 2.0
FETCH_TIMEOUT_S = 0.5
FLOOD_CLIENTS = 32


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
    gateway: GatewayFactory, signing_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    jwks = EchoApp("jwks", jwks={"keys": [signing_key.jwk()]})
    with ExitStack() as jwks_server:
        jwks_url = f"{jwks_server.enter_context(serving(jwks))}/.well-known/jwks.json"
        client = gateway(jwks_urls=(jwks_url,), jwks_min_refetch_s=0.0)
    # The JWKS server is gone: a kid the gateway does not know makes it try
    # to fetch the keys again, which fails.
    unknown = client.get(ME, headers=bearer(SigningKey("key-2").sign()))
    # A token the gateway has never seen, signed with a cached key, verifies.
    answer = client.get(ME, headers=bearer(signing_key.sign(sub="after-outage")))

    assert unknown.status_code == 401
    assert unknown.json()["detail"] == (
        "the access token was rejected: no published signing key has kid 'key-2'"
    )
    failed = [r.getMessage() for r in caplog.records if "cached key" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].startswith(
        f"keeping 1 cached key(s): {jwks_url} could not be fetched: "
        "ClientConnectorError"
    )
    assert jwks.jwks_fetches == 1
    assert answer.status_code == 200
    assert answer.json()["headers"].count(["x-user-id", "after-outage"]) == 1


def test_auth_refetches_jwks_for_unknown_kid(
    gateway: GatewayFactory, users: tuple[EchoApp, str], signing_key: SigningKey
) -> None:
    client = gateway(jwks_min_refetch_s=0.0)
    rotated = SigningKey("key-2")
    users[0].jwks = {"keys": [signing_key.jwk(), rotated.jwk()]}

    answer = client.get(ME, headers=bearer(rotated.sign()))

    assert answer.status_code == 200
    assert users[0].jwks_fetches == 2


def test_auth_rejects_kid_that_no_jwks_has_after_one_refetch(
    gateway: GatewayFactory, users: tuple[EchoApp, str]
) -> None:
    client = gateway(jwks_min_refetch_s=0.0)
    stranger = SigningKey("nobody-publishes-this")

    answer = client.get(ME, headers=bearer(stranger.sign()))

    assert answer.status_code == 401
    assert answer.json()["detail"] == (
        "the access token was rejected: "
        "no published signing key has kid 'nobody-publishes-this'"
    )
    assert users[0].jwks_fetches == 2  # at start-up, then for the unknown kid


@dataclass
class Flood:
    """What a flood of made-up kids and the genuine traffic beside it got."""

    forged: Counter[tuple[int, str]] = field(default_factory=Counter)
    genuine: Counter[int] = field(default_factory=Counter)


async def flood(base_url: str, signing_key: SigningKey, duration_s: float) -> Flood:
    """FLOOD_CLIENTS clients sending made-up kids, and one a genuine token each time."""
    seen = Flood()
    stranger = SigningKey("stranger")
    deadline = time.monotonic() + duration_s

    async def forge(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            kid = f"made-up-{uuid.uuid4().hex[:16]}"
            token = stranger.sign(header={"kid": kid})
            answer = await client.get(ME, headers=bearer(token))
            detail = answer.json()["detail"].replace(repr(kid), "<kid>")
            seen.forged[answer.status_code, detail] += 1

    async def genuine(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            token = signing_key.sign(sub=f"user-{uuid.uuid4().hex}")
            seen.genuine[(await client.get(ME, headers=bearer(token))).status_code] += 1

    limits = httpx.Limits(max_connections=FLOOD_CLIENTS + 1)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30.0
    ) as client:
        await asyncio.gather(
            genuine(client), *(forge(client) for _ in range(FLOOD_CLIENTS))
        )
    return seen


def test_auth_answers_a_flood_of_made_up_kids_at_once(
    gateway: GatewayFactory,
    users: tuple[EchoApp, str],
    signing_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    started = time.monotonic()
    client = gateway(
        jwks_min_refetch_s=REFETCH_S,
        jwks_timeout_s=FETCH_TIMEOUT_S,
        max_in_flight=FLOOD_CLIENTS + 8,
    )

    # Long enough for the flood to outlast one refetch interval.
    seen = asyncio.run(flood(str(client.base_url), signing_key, REFETCH_S * 1.25))
    elapsed_s = time.monotonic() - started

    assert set(seen.forged) == {
        (401, "the access token was rejected: no published signing key has kid <kid>")
    }
    assert set(seen.genuine) == {200}
    # The gateway's own time per request (its log lines'), which the queues
    # of this crowded test process do not blur: no made-up kid waited but
    # for the one fetch of its interval, at most that fetch's timeout.
    refused_ms = [
        getattr(r, "duration_ms", 0)
        for r in caplog.records
        if r.name == REQUEST_LOGGER and getattr(r, "status", 0) == 401
    ]
    assert len(refused_ms) == seen.forged.total()
    assert max(refused_ms) < FETCH_TIMEOUT_S * 1000
    # One fetch at start-up, then at most one per interval.
    assert 2 <= users[0].jwks_fetches <= 1 + elapsed_s // REFETCH_S


def test_auth_fetches_keys_from_every_replica_of_the_jwks_route(
    gateway: GatewayFactory,
    users: tuple[EchoApp, str],
    signing_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = closed_port_url()
    client = gateway(
        jwks_urls=("/.well-known/jwks.json",),
        upstreams={"users": (down, users[1]), "competency": (users[1],)},
    )

    answer = client.get(ME, headers=bearer(signing_key.sign()))

    assert answer.status_code == 200
    assert users[0].jwks_fetches == 1
    failover = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("fetched the signing keys")]  # fmt: skip
    assert len(failover) == 1
    assert failover[0].startswith(
        f"fetched the signing keys from {users[1]}/.well-known/jwks.json after: "
        f"{down}/.well-known/jwks.json could not be fetched: ClientConnectorError"
    )


def test_auth_fetches_keys_from_the_next_url_while_one_fails(
    gateway: GatewayFactory, servers: ExitStack, signing_key: SigningKey
) -> None:
    replicas = [EchoApp(f"users-{n}", jwks={"keys": [signing_key.jwk()]})
                for n in (1, 2)]  # fmt: skip
    urls = [f"{servers.enter_context(serving(app))}/.well-known/jwks.json"
            for app in replicas]  # fmt: skip
    client = gateway(jwks_urls=tuple(urls), jwks_min_refetch_s=0.0)
    rotated = SigningKey("key-2")
    replicas[0].jwks_status = 503
    replicas[1].jwks = {"keys": [signing_key.jwk(), rotated.jwk()]}

    rotated_in = client.get(ME, headers=bearer(rotated.sign()))
    # The next fetch starts with the URL that answered last.
    unknown = client.get(ME, headers=bearer(SigningKey("key-3").sign()))

    assert rotated_in.status_code == 200
    assert unknown.status_code == 401
    assert [app.jwks_fetches for app in replicas] == [2, 2]


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
