"""Access tokens (ES256 JWTs) and refresh tokens (opaque, stored as hashes)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from services.users.keys import ALGORITHM, KeyRing

TOKEN_TYPE = "Bearer"  # noqa: S105 (the scheme's name, not a secret)


@dataclass(frozen=True)
class AccessToken:
    token: str
    kid: str
    expires_in_s: int


def issue_access_token(
    keys: KeyRing,
    *,
    user_id: uuid.UUID,
    roles: Sequence[str],
    issuer: str,
    audience: str,
    ttl_s: int,
) -> AccessToken:
    """A JWT for ``user_id`` signed by the newest key, valid ``ttl_s`` seconds."""
    key = keys.signing_key
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "roles": list(roles),
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(
        claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid}
    )
    return AccessToken(token, key.kid, ttl_s)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> bytes:
    """What is stored instead of the token: its SHA-256 digest."""
    return hashlib.sha256(token.encode("utf-8")).digest()
