"""The JWKS cache: parsing, keeping keys through outages, rate-limited refetches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gateway_testkit import SigningKey

from services.gateway.keys import JwksCache, JwksUnavailable, parse_jwks


class FakeTime:
    """A clock whose sleep only moves the clock forward."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds
        await asyncio.sleep(0)


class Source:
    """A JWKS endpoint in memory that can be made to fail."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    async def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        await asyncio.sleep(0)
        if self.down:
            raise JwksUnavailable("test-jwks could not be fetched: refused")
        return {"keys": [key.jwk() for key in self.keys]}


def cache_for(source: Source, clock: FakeTime) -> JwksCache:
    return JwksCache(
        source, source="test-jwks", min_refetch_s=3.0, clock=clock, sleep=clock.sleep
    )


def test_parse_jwks_skips_keys_it_cannot_use(signing_key: SigningKey) -> None:
    hmac_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"}
    encryption = {**SigningKey("enc").jwk(), "use": "enc"}
    no_kid = {k: v for k, v in SigningKey("x").jwk().items() if k != "kid"}
    broken = {"kty": "EC", "crv": "P-256", "x": "AA", "kid": "broken"}

    keys = parse_jwks(
        {"keys": [hmac_key, encryption, no_kid, broken, signing_key.jwk()]},
        source="test",
    )

    assert list(keys) == ["key-1"]
    assert keys["key-1"].algorithm_name == "ES256"


@pytest.mark.parametrize("document", [[], {"keys": "none"}, {"no": "keys"}])
def test_parse_jwks_rejects_non_jwks(document: Any) -> None:
    with pytest.raises(JwksUnavailable) as caught:
        parse_jwks(document, source="http://users/jwks")

    assert str(caught.value) == (
        "http://users/jwks is not a JWKS document (no 'keys' list)"
    )


def test_jwks_cache_keeps_keys_when_source_is_down(signing_key: SigningKey) -> None:
    source = Source(signing_key)
    cache = cache_for(source, FakeTime())

    async def scenario() -> tuple[bool, bool]:
        first = await cache.refresh()
        source.down = True
        return first, await cache.refresh()

    assert asyncio.run(scenario()) == (True, False)
    assert "key-1" in cache
    assert cache.kids == {"key-1"}


def test_jwks_cache_fetches_unknown_kid_immediately_once(
    signing_key: SigningKey,
) -> None:
    source = Source(signing_key)
    clock = FakeTime()
    cache = cache_for(source, clock)

    async def scenario() -> bool:
        await cache.refresh()
        source.keys.append(SigningKey("key-2"))
        return await cache.get("key-2") is not None

    assert asyncio.run(scenario())
    assert source.fetches == 2
    assert clock.slept == []


def test_jwks_cache_refetches_at_most_once_per_interval(
    signing_key: SigningKey,
) -> None:
    source = Source(signing_key)
    clock = FakeTime()
    cache = cache_for(source, clock)

    async def scenario() -> list[Any]:
        await cache.get("made-up-1")  # fetches at once
        clock.now += 1.0
        return await asyncio.gather(*(cache.get(f"made-up-{n}") for n in range(5)))

    found = asyncio.run(scenario())

    assert found == [None] * 5
    assert source.fetches == 2
    assert clock.slept[0] == 2.0


def test_jwks_cache_shares_one_fetch_between_concurrent_refreshes(
    signing_key: SigningKey,
) -> None:
    source = Source(signing_key)
    cache = cache_for(source, FakeTime())

    async def scenario() -> list[bool]:
        return await asyncio.gather(*(cache.refresh() for _ in range(4)))

    assert asyncio.run(scenario()) == [True] * 4
    assert source.fetches == 1
