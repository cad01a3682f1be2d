"""Access tokens at the gateway: forgeries are refused, key rotation goes unnoticed.

Everything is sent through the gateway. The bad tokens are well formed and
signed with the stack's real signing keys (read from the users service's key
folder), so each is refused for exactly the one thing wrong with it.
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
from pathlib import Path
from typing import Any

import allure
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.endpoints import Endpoints
from harness.state import StackState

pytestmark = [allure.epic("Service contracts"), allure.feature("Gateway: token checks")]

ME = "/api/v1/users/me"
PASSWORD = "correct horse 42 battery"
ROTATION_TIMEOUT_S = 20.0


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keys_dir(stack_state: StackState) -> Path:
    assert stack_state.workdir is not None, "the stack has no working folder"
    return stack_state.workdir / "users" / "keys"


def newest_key(stack_state: StackState) -> tuple[str, ec.EllipticCurvePrivateKey]:
    path = max(keys_dir(stack_state).glob("*.pem"))
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return path.stem, key


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
def claims(http: httpx.Client, learner: str) -> dict[str, Any]:
    """The claims of a genuine access token, to build forgeries from."""
    token = login(http, learner)["access_token"]
    genuine: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return genuine


Forge = Callable[[dict[str, Any], StackState], str]


def signed(**changes: Any) -> Forge:
    """A token with the real newest key, its claims changed (relative times in s)."""

    def forge(claims: dict[str, Any], stack_state: StackState) -> str:
        kid, key = newest_key(stack_state)
        now = int(time.time())
        changed = {
            name: now + value if name in ("exp", "nbf", "iat") else value
            for name, value in changes.items()
        }
        return jwt.encode({**claims, **changed}, key, "ES256", headers={"kid": kid})

    return forge


def unsigned(claims: dict[str, Any], stack_state: StackState) -> str:
    kid, _ = newest_key(stack_state)
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps({**claims, "roles": ["admin"]}).encode())
    return f"{header}.{payload}."


def hmac_with_public_key(claims: dict[str, Any], stack_state: StackState) -> str:
    kid, key = newest_key(stack_state)
    secret = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def impostor_claiming_real_kid(claims: dict[str, Any], stack_state: StackState) -> str:
    kid, _ = newest_key(stack_state)
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, stranger, "ES256", headers={"kid": kid})


def unknown_kid(claims: dict[str, Any], stack_state: StackState) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    kid = f"nobody-{uuid.uuid4().hex}"
    return jwt.encode(claims, stranger, "ES256", headers={"kid": kid})


def garbage(claims: dict[str, Any], stack_state: StackState) -> str:
    return "this-is-not-a-jwt"


FORGERIES: dict[str, Forge] = {
    "garbage": garbage,
    "alg-none": unsigned,
    "hmac-with-public-key": hmac_with_public_key,
    "wrong-signature": impostor_claiming_real_kid,
    "unknown-kid": unknown_kid,
    "expired": signed(exp=-120, iat=-1000, nbf=-1000),
    "not-yet-valid": signed(nbf=600),
    "wrong-issuer": signed(iss="someone-else"),
    "wrong-audience": signed(aud="another-api"),
}


def test_gateway_refuses_request_without_token(http: httpx.Client) -> None:
    answer = me(http, None)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("forgery", FORGERIES)
def test_gateway_refuses_bad_token(
    http: httpx.Client,
    stack_state: StackState,
    claims: dict[str, Any],
    forgery: str,
) -> None:
    token = FORGERIES[forgery](claims, stack_state)

    answer = me(http, token)

    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert answer.json()["status"] == 401


def test_gateway_accepts_token_signed_with_real_key(
    http: httpx.Client, stack_state: StackState, claims: dict[str, Any]
) -> None:
    # The control for the forgeries above: the same claims, nothing changed.
    answer = me(http, signed()(claims, stack_state))

    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == claims["sub"]


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

    Replicas rescan the key folder each on its own clock; the gateway fetches
    keys from the first one, so the wait covers every replica's JWKS too.
    """
    deadline = time.monotonic() + ROTATION_TIMEOUT_S
    seen: list[str] = []
    while time.monotonic() < deadline:
        token: str = login(http, email)["access_token"]
        seen.append(kid_of(token))
        published = [
            {
                key["kid"]
                for key in httpx.get(f"{url}/.well-known/jwks.json").json()["keys"]
            }
            for url in stack["users"].urls
        ]
        if seen[-1] == kid and all(kid in kids for kids in published):
            return token
        time.sleep(0.2)
    raise AssertionError(
        f"no access token signed by {kid} within {ROTATION_TIMEOUT_S}s; "
        f"kids seen: {seen[-5:]}"
    )
