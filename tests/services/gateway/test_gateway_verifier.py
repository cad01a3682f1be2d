"""The token verifier against locally generated keys, and every way to cheat it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from gateway_testkit import AUDIENCE, ISSUER, SigningKey

from services.gateway.errors import TokenRejected
from services.gateway.keys import JwksCache, parse_jwks
from services.gateway.tokens import Identity, TokenCache, TokenVerifier, bearer_token


class Jwks:
    """A JWKS document served from memory, counting how often it is fetched."""

    def __init__(self, *jwks: dict[str, Any]) -> None:
        self.document: dict[str, Any] = {"keys": list(jwks)}
        self.fetches = 0

    async def __call__(self) -> dict[str, jwt.PyJWK]:
        self.fetches += 1
        return parse_jwks(self.document, source="test-jwks")


def verifier_for(jwks: Jwks, **options: Any) -> TokenVerifier:
    cache = JwksCache(jwks, source="test-jwks")
    return TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, **options)


def verify(verifier: TokenVerifier, token: str) -> Identity:
    return asyncio.run(verifier.verify(token))


def rejection(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenRejected) as caught:
        verify(verifier, token)
    return str(caught.value)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_verifier_accepts_valid_es256_token(signing_key: SigningKey) -> None:
    verifier = verifier_for(Jwks(signing_key.jwk()))
    token = signing_key.sign(sub="user-7", roles=["learner", "admin"])

    identity = verify(verifier, token)

    assert identity.subject == "user-7"
    assert identity.roles == ("learner", "admin")
    assert identity.roles_header == "learner,admin"
    assert identity.kid == "key-1"


def test_verifier_accepts_eddsa_token() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = {
        **jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True),
        "kid": "ed-1",
    }
    now = int(time.time())
    claims = {"sub": "u", "roles": [], "iss": ISSUER, "aud": AUDIENCE,
              "iat": now, "nbf": now, "exp": now + 60}  # fmt: skip
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "ed-1"})

    assert verify(verifier_for(Jwks(jwk)), token).subject == "u"


def test_verifier_rejects_alg_none_before_any_key_is_used(
    signing_key: SigningKey,
) -> None:
    jwks = Jwks(signing_key.jwk())
    verifier = verifier_for(jwks)
    claims = {"sub": "admin", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE}
    token = f"{b64({'alg': 'none', 'kid': 'key-1'})}.{b64(claims)}."

    reason = rejection(verifier, token)

    assert reason == "algorithm 'none' is not accepted; tokens must use ES256 or EdDSA"
    assert jwks.fetches == 0


def test_verifier_rejects_hmac_signed_with_public_key_before_any_key_is_used(
    signing_key: SigningKey,
) -> None:
    jwks = Jwks(signing_key.jwk())
    verifier = verifier_for(jwks)
    public_pem = signing_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "key-1"})
    now = int(time.time())
    payload = b64({"sub": "admin", "roles": ["admin"], "iss": ISSUER,
                   "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 60})  # fmt: skip
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256)
    token = f"{header}.{payload}.{b64(mac.digest())}"

    reason = rejection(verifier, token)

    assert reason == "algorithm 'HS256' is not accepted; tokens must use ES256 or EdDSA"
    assert jwks.fetches == 0


def test_verifier_rejects_other_asymmetric_algorithms(signing_key: SigningKey) -> None:
    verifier = verifier_for(Jwks(signing_key.jwk()))
    header = b64({"alg": "RS256", "kid": "key-1"})

    assert rejection(verifier, f"{header}.e30.c2ln") == (
        "algorithm 'RS256' is not accepted; tokens must use ES256 or EdDSA"
    )


def test_verifier_rejects_signature_of_another_key_claiming_real_kid(
    signing_key: SigningKey,
) -> None:
    verifier = verifier_for(Jwks(signing_key.jwk()))
    impostor = SigningKey("key-1")

    assert rejection(verifier, impostor.sign()) == (
        "the token's signature does not verify"
    )


def test_verifier_rejects_kid_of_key_for_another_algorithm(
    signing_key: SigningKey,
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    ed_jwk = {
        **jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True),
        "kid": "ed-1",
    }
    verifier = verifier_for(Jwks(signing_key.jwk(), ed_jwk))

    token = signing_key.sign(header={"kid": "ed-1"})

    assert rejection(verifier, token) == "key 'ed-1' is for EdDSA, not ES256"


def test_verifier_rejects_unknown_kid_after_refetch(signing_key: SigningKey) -> None:
    jwks = Jwks(signing_key.jwk())
    verifier = verifier_for(jwks)

    reason = rejection(verifier, SigningKey("unknown").sign())

    assert reason == "no published signing key has kid 'unknown'"
    assert jwks.fetches == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": -60}, "the token has expired"),
        ({"nbf": 60}, "the token is not valid yet (nbf or iat)"),
        ({"iat": 60}, "the token is not valid yet (nbf or iat)"),
        ({"iss": "someone-else"}, "the token was issued by someone else (iss)"),
        ({"aud": "another-api"}, "the token is meant for someone else (aud)"),
        ({"exp": None}, "the token lacks a required claim"),
        ({"sub": None}, "the token lacks a required claim"),
        ({"roles": "admin"}, "the token's roles claim is not a list of role names"),
        ({"roles": ["ad,min"]}, "the token's roles claim is not a list of role names"),
        ({"roles": None}, "the token's roles claim is not a list of role names"),
        ({"sub": "a\r\nX-User-Roles: admin"},
         "the token's sub claim is not a plain identifier"),
    ],
)  # fmt: skip
def test_verifier_rejects_bad_claims(
    signing_key: SigningKey, claims: dict[str, Any], reason: str
) -> None:
    verifier = verifier_for(Jwks(signing_key.jwk()))
    now = int(time.time())
    relative = {"exp", "nbf", "iat"}
    claims = {
        k: now + v if k in relative and v is not None else v for k, v in claims.items()
    }

    assert rejection(verifier, signing_key.sign(**claims)) == reason


def test_verifier_allows_small_clock_skew(signing_key: SigningKey) -> None:
    verifier = verifier_for(Jwks(signing_key.jwk()), leeway_s=5.0)
    now = int(time.time())

    identity = verify(verifier, signing_key.sign(exp=now - 2, nbf=now + 2, iat=now + 2))

    assert identity.subject == "user-1"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("garbage", "the token is not a JWT (header.payload.signature)"),
        ("a.b.c", "the token's header is not base64url JSON"),
        (f"{b64(b'[1]')}.e30.c2ln", "the token's header is not a JSON object"),
        ("x" * 9000, "the token is longer than 8192 characters"),
        (f"{b64({'alg': 'ES256'})}.e30.c2ln", "the token header has no kid"),
        (f"{b64({'alg': 'ES256', 'kid': 'key-1', 'crit': ['exp']})}.e30.c2ln",
         "the token header has crit extensions; none are known"),
        (f"{b64({'alg': 'ES256', 'kid': 'key-1'})}.!!.c2ln",
         "the token is malformed (DecodeError)"),
    ],
)  # fmt: skip
def test_verifier_rejects_malformed_tokens(
    signing_key: SigningKey, token: str, reason: str
) -> None:
    assert rejection(verifier_for(Jwks(signing_key.jwk())), token) == reason


def test_verifier_caches_verified_token_until_it_expires(
    signing_key: SigningKey,
) -> None:
    now = [time.time()]
    verifier = verifier_for(Jwks(signing_key.jwk()), clock=lambda: now[0])
    token = signing_key.sign(exp=int(now[0]) + 30)
    verify(verifier, token)

    now[0] += 10
    cached = verify(verifier, token)
    now[0] += 30

    assert cached.subject == "user-1"
    assert len(verifier.cache) == 1
    assert rejection(verifier, token) == "the token has expired"
    assert len(verifier.cache) == 0


def test_verifier_drops_cached_token_whose_key_was_withdrawn(
    signing_key: SigningKey,
) -> None:
    jwks = Jwks(signing_key.jwk())
    verifier = verifier_for(jwks)
    token = signing_key.sign()
    verify(verifier, token)

    jwks.document = {"keys": [SigningKey("key-2").jwk()]}
    asyncio.run(verifier.keys.refresh())

    assert rejection(verifier, token) == "no published signing key has kid 'key-1'"


def test_token_cache_evicts_least_recently_used() -> None:
    cache = TokenCache(capacity=2)
    identity = Identity("u", (), 0.0, "k")
    cache.put("a", identity)
    cache.put("b", identity)
    cache.get("a")

    cache.put("c", identity)

    assert cache.get("b") is None
    assert cache.get("a") is identity
    assert cache.get("c") is identity


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        (None, None),
        ("", None),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer  abc ", "abc"),
    ],
)
def test_bearer_token_reads_only_bearer_scheme(
    authorization: str | None, token: str | None
) -> None:
    assert bearer_token(authorization) == token
