"""Access token verification: who is calling, and is the token genuine.

Only asymmetric algorithms from ``keys.ALGORITHMS`` are accepted; the header
is checked (algorithm, ``kid``, no ``crit``) before any key is looked up, so
``alg: none`` and HMAC tokens never reach a verification routine. A verified
token is cached, keyed by its text, until it expires or its key is withdrawn
from the JWKS: verifying an ES256 signature costs far more than the rest of
a proxied request.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from services.gateway.errors import TokenRejected
from services.gateway.keys import ALGORITHMS, JwksCache

MAX_TOKEN_CHARS = 8192
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub")
# Values that go into X-User-Id / X-User-Roles must be safe header text.
_HEADER_SAFE = re.compile(r"[A-Za-z0-9._:@+-]{1,256}")
_CLAIM_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf or iat)"),
    (jwt.InvalidIssuerError, "the token was issued by someone else (iss)"),
    (jwt.InvalidAudienceError, "the token is meant for someone else (aud)"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
)


@dataclass(frozen=True)
class Identity:
    """The verified caller: what services get as X-User-Id and X-User-Roles."""

    subject: str
    roles: tuple[str, ...]
    expires_at: float
    kid: str

    @property
    def roles_header(self) -> str:
        return ",".join(self.roles)


class TokenCache:
    """A bounded LRU of verified tokens; the oldest used entry goes first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Identity] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Identity | None:
        identity = self._entries.get(token)
        if identity is not None:
            self._entries.move_to_end(token)
        return identity

    def put(self, token: str, identity: Identity) -> None:
        self._entries[token] = identity
        self._entries.move_to_end(token)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)


class TokenVerifier:
    """Verifies access tokens against the keys of a ``JwksCache``."""

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: str,
        leeway_s: float = 5.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self.cache = TokenCache(cache_size)
        self._clock = clock

    async def verify(self, token: str) -> Identity:
        """The identity in ``token``; raises TokenRejected saying what is wrong."""
        cached = self.cache.get(token)
        if cached is not None:
            if cached.expires_at + self.leeway_s < self._clock():
                self.cache.discard(token)
                raise TokenRejected("the token has expired")
            if cached.kid in self.keys:
                return cached
            self.cache.discard(token)
        identity = await self._verify(token)
        self.cache.put(token, identity)
        return identity

    async def _verify(self, token: str) -> Identity:
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRejected(
                f"algorithm {_short(algorithm)} is not accepted; "
                f"tokens must use {' or '.join(sorted(ALGORITHMS))}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token header has no kid")
        if "crit" in header:
            raise TokenRejected("the token header has crit extensions; none are known")
        key = await self.keys.get(kid)
        if key is None:
            raise TokenRejected(f"no published signing key has kid {_short(kid)}")
        if key.algorithm_name != algorithm:
            raise TokenRejected(
                f"key {_short(kid)} is for {key.algorithm_name}, not {algorithm}"
            )
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from exc
        # Older PyJWT releases accept an iat in the future; a token from the
        # future is as suspect as one whose nbf has not come.
        issued_at = claims["iat"]
        if not isinstance(issued_at, int | float) or issued_at > (
            self._clock() + self.leeway_s
        ):
            raise TokenRejected("the token is not valid yet (nbf or iat)")
        return _identity(claims, kid)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, None for anything else."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected(f"the token is longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("the token is not a JWT (header.payload.signature)")
    try:
        encoded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise TokenRejected("the token's header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise TokenRejected("the token's header is not a JSON object")
    return header


def _identity(claims: Mapping[str, Any], kid: str) -> Identity:
    subject, roles = claims["sub"], claims.get("roles")
    if not isinstance(subject, str) or not _HEADER_SAFE.fullmatch(subject):
        raise TokenRejected("the token's sub claim is not a plain identifier")
    if not isinstance(roles, list) or not all(
        isinstance(role, str) and _HEADER_SAFE.fullmatch(role) for role in roles
    ):
        raise TokenRejected("the token's roles claim is not a list of role names")
    return Identity(subject, tuple(roles), float(claims["exp"]), kid)


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _CLAIM_ERRORS:
        if isinstance(exc, kind):
            return reason
    return f"the token is malformed ({type(exc).__name__})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
