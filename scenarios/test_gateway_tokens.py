"""Access tokens at the gateway: forgeries are refused, key rotation goes unnoticed.

Everything is sent through the gateway. The bad tokens are built from a
genuine one and signed with the key that signed it (read from the users
service's key folder), so each is refused for exactly the one thing wrong
with it, and the test says which.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import allure
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.endpoints import Endpoints
from harness.eventually import eventually
from harness.state import StackState

pytestmark = [allure.epic("Service contracts"), allure.feature("Gateway: token checks")]

ME = "/api/v1/users/me"
PASSWORD = "correct horse 42 battery"
ROTATION_TIMEOUT_S = 20.0


REJECTED = "the access token was rejected: "
UNKNOWN_KID = "nobody-publishes-this"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keys_dir(stack_state: StackState) -> Path:
    assert stack_state.workdir is not None, "the stack has no working folder"
    return stack_state.workdir / "users" / "keys"


def login(http: httpx.Client, email: str) -> dict[str, Any]:
    answer = http.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def me(http: httpx.Client, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return http.get(ME, headers=headers)


@dataclass(frozen=True)
class Genuine:
    """A genuine access token's claims, and the stack's key that signed it."""

    claims: dict[str, Any]
    kid: str
    key: ec.EllipticCurvePrivateKey


@pytest.fixture
def learner(http: httpx.Client) -> str:
    """A freshly registered learner's email; the password is PASSWORD."""
    email = f"tokens-{uuid.uuid4().hex[:12]}@example.org"
    answer = http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Tess Token"},
    )
    assert answer.status_code == 201, answer.text
    return email


@pytest.fixture
def genuine(http: httpx.Client, stack_state: StackState, learner: str) -> Genuine:
    """A genuine access token, to build forgeries from with the key that signed it.

    Not the newest key file: a key just rotated in is not published yet, and
    a forgery signed with it would be refused for its kid alone.
    """
    token = login(http, learner)["access_token"]
    kid = kid_of(token)
    key = serialization.load_pem_private_key(
        (keys_dir(stack_state) / f"{kid}.pem").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return Genuine(claims, kid, key)


Forge = Callable[[Genuine], str]


def signed(**changes: Any) -> Forge:
    """A token signed with the genuine token's key, its claims changed (relative
    times in s)."""

    def forge(genuine: Genuine) -> str:
        now = int(time.time())
        changed = {
            name: now + value if name in ("exp", "nbf", "iat") else value
            for name, value in changes.items()
        }
        claims = {**genuine.claims, **changed}
        return jwt.encode(claims, genuine.key, "ES256", headers={"kid": genuine.kid})

    return forge


def unsigned(genuine: Genuine) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": genuine.kid}).encode())
    payload = b64(json.dumps({**genuine.claims, "roles": ["admin"]}).encode())
    return f"{header}.{payload}."


def hmac_with_public_key(genuine: Genuine) -> str:
    secret = genuine.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": genuine.kid}).encode()
    )
    payload = b64(json.dumps(genuine.claims).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def impostor_claiming_real_kid(genuine: Genuine) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(genuine.claims, stranger, "ES256", headers={"kid": genuine.kid})


def unknown_kid(genuine: Genuine) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(genuine.claims, stranger, "ES256", headers={"kid": UNKNOWN_KID})


def garbage(genuine: Genuine) -> str:
    return "this-is-not-a-jwt"


# Each forgery, and the one thing the gateway must find wrong with it.
FORGERIES: dict[str, tuple[Forge, str]] = {
    "garbage": (garbage, "the token is not a JWT (header.payload.signature)"),
    "alg-none": (
        unsigned,
        "algorithm 'none' is not accepted; tokens must use ES256 or EdDSA",
    ),
    "hmac-with-public-key": (
        hmac_with_public_key,
        "algorithm 'HS256' is not accepted; tokens must use ES256 or EdDSA",
    ),
    "wrong-signature": (
        impostor_claiming_real_kid,
        "the token's signature does not verify",
    ),
    "unknown-kid": (unknown_kid, f"no published signing key has kid {UNKNOWN_KID!r}"),
    "expired": (
        signed(exp=-120, iat=-1000, nbf=-1000),
        "the token has expired",
    ),
    "not-yet-valid": (signed(nbf=600), "the token is not valid yet (nbf or iat)"),
    "wrong-issuer": (
        signed(iss="someone-else"),
        "the token was issued by someone else (iss)",
    ),
    "wrong-audience": (
        signed(aud="another-api"),
        "the token is meant for someone else (aud)",
    ),
}


@allure.story("Only a valid access token gets in")
def test_gateway_refuses_request_without_token(http: httpx.Client) -> None:
    answer = me(http, None)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.headers["content-type"] == "application/problem+json"


@allure.story("Only a valid access token gets in")
@pytest.mark.parametrize("forgery", FORGERIES)
def test_gateway_refuses_bad_token(
    http: httpx.Client, genuine: Genuine, forgery: str
) -> None:
    forge, reason = FORGERIES[forgery]

    answer = me(http, forge(genuine))

    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="campus", error="invalid_token"'
    )
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 401
    assert answer.json()["detail"] == REJECTED + reason


@allure.story("Only a valid access token gets in")
def test_gateway_accepts_token_signed_with_real_key(
    http: httpx.Client, genuine: Genuine
) -> None:
    # The control for the forgeries above: the same claims and key, nothing changed.
    answer = me(http, signed()(genuine))

    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == genuine.claims["sub"]


@allure.story("A revoked session stays out")
def test_gateway_refuses_refresh_token_of_revoked_family(
    http: httpx.Client, learner: str
) -> None:
    first = login(http, learner)["refresh_token"]
    renewed = http.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()["refresh_token"]

    reused = http.post("/api/v1/auth/refresh", json={"refresh_token": first})
    after_reuse = http.post("/api/v1/auth/refresh", json={"refresh_token": second})

    assert reused.status_code == 401
    assert after_reuse.status_code == 401
    assert after_reuse.headers["www-authenticate"].startswith("Bearer")


@allure.story("Signing keys rotate unnoticed")
def test_gateway_accepts_old_and_new_tokens_across_key_rotation(
    http: httpx.Client, stack: Endpoints, stack_state: StackState, learner: str
) -> None:
    before = login(http, learner)["access_token"]
    folder = keys_dir(stack_state)
    rotate = subprocess.run(
        [sys.executable, "-m", "services.users.keys", "rotate"],
        env={**os.environ, "USERS_KEYS_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotate.returncode == 0, rotate.stderr
    new_kid = max(folder.glob("*.pem")).stem
    assert new_kid != kid_of(before)

    after = wait_for_kid(http, stack, learner, new_kid)

    assert me(http, after).status_code == 200
    assert me(http, before).status_code == 200


def wait_for_kid(http: httpx.Client, stack: Endpoints, email: str, kid: str) -> str:
    """A fresh access token signed by ``kid``, once every users replica publishes it.

    Replicas rescan the key folder each on its own clock, and the gateway
    may fetch the keys from any of them, so the wait covers every replica's
    JWKS too.
    """

    def signed_and_published() -> tuple[str, list[set[str]]]:
        token: str = login(http, email)["access_token"]
        published = [
            {
                key["kid"]
                for key in httpx.get(f"{url}/.well-known/jwks.json").json()["keys"]
            }
            for url in stack["users"].urls
        ]
        return token, published

    token, _ = eventually(
        signed_and_published,
        until=lambda seen: kid_of(seen[0]) == kid and all(kid in p for p in seen[1]),
        timeout_s=ROTATION_TIMEOUT_S,
        interval_s=0.2,
        what=f"an access token signed by {kid}, published by every users replica",
    )
    return token
