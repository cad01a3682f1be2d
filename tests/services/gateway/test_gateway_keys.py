"""The JWKS cache: parsing, keeping keys through outages, rate-limited refetches."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import jwt
import pytest
from gateway_testkit import TEST_ROUTES, SigningKey

from services.gateway.errors import ConfigError
from services.gateway.keys import (
    JwksCache,
    JwksSources,
    JwksUnavailable,
    jwks_urls,
    parse_jwks,
)
from services.gateway.routes import parse_routes

T = TypeVar("T")


class FakeClock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A JWKS endpoint in memory that can be made to fail, or to hang."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> dict[str, jwt.PyJWK]:
        self.fetches += 1
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise JwksUnavailable("test-jwks could not be fetched: refused")
        return parse_jwks({"keys": [key.jwk() for key in self.keys]}, source="test")


def cache_for(source: Source, clock: FakeClock, wait_s: float = 2.0) -> JwksCache:
    return JwksCache(
        source, source="test-jwks", min_refetch_s=3.0, wait_s=wait_s, clock=clock
    )


def answered_at_once(call: Coroutine[Any, Any, T]) -> T:
    """The result of ``call``, which must finish without waiting for anything."""
    with pytest.raises(StopIteration) as finished:
        call.send(None)
    result: T = finished.value.value
    return result


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
    cache = cache_for(source, FakeClock())

    async def scenario() -> tuple[bool, bool]:
        first = await cache.refresh()
        source.down = True
        return first, await cache.refresh()

    assert asyncio.run(scenario()) == (True, False)
    assert "key-1" in cache
    assert cache.kids == {"key-1"}


def test_jwks_cache_fetches_unknown_kid_once_the_interval_has_passed(
    signing_key: SigningKey,
) -> None:
    source = Source(signing_key)
    clock = FakeClock()
    cache = cache_for(source, clock)

    async def scenario() -> bool:
        await cache.refresh()
        source.keys.append(SigningKey("key-2"))
        clock.now += 3.0
        return await cache.get("key-2") is not None

    assert asyncio.run(scenario())
    assert source.fetches == 2


def test_jwks_cache_answers_unknown_kids_at_once_within_the_interval(
    signing_key: SigningKey,
) -> None:
    source = Source(signing_key)
    clock = FakeClock()
    cache = cache_for(source, clock)

    async def scenario() -> list[Any]:
        await cache.refresh()
        source.keys.append(SigningKey("key-2"))
        clock.now += 2.9
        return [answered_at_once(cache.get(kid)) for kid in ("key-2", "made-up")]

    assert asyncio.run(scenario()) == [None, None]
    assert source.fetches == 1


def test_jwks_cache_shares_one_fetch_between_a_flood_of_unknown_kids(
    signing_key: SigningKey,
) -> None:
    source = Source(signing_key)
    clock = FakeClock()
    cache = cache_for(source, clock)

    async def scenario() -> tuple[list[Any], list[Any], Any]:
        await cache.refresh()
        clock.now += 3.0
        source.gate = asyncio.Event()
        waiting = [asyncio.create_task(cache.get(f"made-up-{n}")) for n in range(50)]
        await asyncio.sleep(0.01)
        source.gate.set()
        during = await asyncio.gather(*waiting)
        clock.now += 2.9
        after = [answered_at_once(cache.get(f"later-{n}")) for n in range(50)]
        clock.now += 0.1
        return during, after, await cache.get("next-interval")

    during, after, next_interval = asyncio.run(scenario())

    assert during == [None] * 50
    assert after == [None] * 50
    assert next_interval is None
    assert source.fetches == 3  # at start, the flood's one, the next interval's


def test_jwks_cache_waits_for_a_hanging_fetch_at_most_wait_s(
    signing_key: SigningKey,
) -> None:
    source = Source()
    cache = cache_for(source, FakeClock(), wait_s=0.05)

    async def scenario() -> tuple[Any, ...]:
        source.gate = asyncio.Event()
        source.keys.append(signing_key)
        # A cache that waited for the fetch itself would wait here for ever.
        async with asyncio.timeout(5.0):
            gets = await asyncio.gather(cache.get("key-1"), cache.get("key-1"))
        source.gate.set()
        return *gets, await cache.refresh()

    assert asyncio.run(scenario()) == (None, None, True)
    assert source.fetches == 1
    assert "key-1" in cache


def test_jwks_cache_shares_one_fetch_between_concurrent_refreshes(
    signing_key: SigningKey,
) -> None:
    source = Source(signing_key)
    cache = cache_for(source, FakeClock())

    async def scenario() -> list[bool]:
        return await asyncio.gather(*(cache.refresh() for _ in range(4)))

    assert asyncio.run(scenario()) == [True] * 4
    assert source.fetches == 1


REPLICAS = {"users": ("http://a:1", "http://b:2"), "competency": ("http://c:3",)}


def test_jwks_urls_of_a_path_are_those_of_its_routes_replicas() -> None:
    urls = jwks_urls(("/.well-known/jwks.json",), parse_routes(TEST_ROUTES), REPLICAS)

    assert urls == (
        "http://a:1/.well-known/jwks.json",
        "http://b:2/.well-known/jwks.json",
    )


def test_jwks_urls_are_kept_as_they_are() -> None:
    given = ("http://x:1/jwks", "https://y/jwks")

    assert jwks_urls(given, parse_routes(TEST_ROUTES), REPLICAS) == given


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/keys.json", "no route matches path '/keys.json'"),
        (
            "/api/v1/users/u1",
            "GET is not allowed on '/api/v1/users/u1'; allowed: PATCH",
        ),
    ],
)
def test_jwks_urls_refuse_a_path_no_get_route_serves(path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        jwks_urls((path,), parse_routes(TEST_ROUTES), REPLICAS)

    assert str(caught.value) == (
        f"JWKS_URL is the path {path!r}, which no GET route serves ({reason}); give "
        "the path of a route to the service that publishes the keys, or its "
        "http(s) URLs"
    )


def test_jwks_sources_need_a_url() -> None:
    with pytest.raises(ValueError) as caught:
        JwksSources((), lambda: pytest.fail("no session is needed"), timeout_s=1.0)

    assert str(caught.value) == "JwksSources needs at least one URL"
