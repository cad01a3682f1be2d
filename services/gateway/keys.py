"""The public keys that sign access tokens, fetched from JWKS URLs and cached.

The cache is refreshed in the background, fetched again (at most once per
``min_refetch_s``) when a token names a kid it does not know, and keeps the
last good key set when no JWKS URL can be reached, so a short outage of the
users service does not lock everyone out. A JWKS may be published at
several URLs (the replicas of the users service): each fetch tries them in
turn, starting with the one that answered last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import jwt

from services.gateway.errors import ConfigError, RequestRejected
from services.gateway.routes import RouteTable

logger = logging.getLogger(__name__)

ALGORITHMS = frozenset({"ES256", "EdDSA"})

FetchKeys = Callable[[], Awaitable[Mapping[str, jwt.PyJWK]]]


class JwksUnavailable(Exception):
    """The JWKS document could not be fetched or read; the message says why."""


def parse_jwks(document: Any, *, source: str) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document by kid; keys we cannot use are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable(f"{source} is not a JWKS document (no 'keys' list)")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        kid = entry.get("kid") if isinstance(entry, Mapping) else None
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            logger.warning("%s: skipping a key without kid or not for signing", source)
            continue
        try:
            key = jwt.PyJWK(dict(entry))
        except jwt.PyJWTError as exc:
            logger.warning("%s: skipping key %r: %s", source, kid, exc)
            continue
        if key.algorithm_name not in ALGORITHMS:
            logger.warning(
                "%s: skipping key %r for algorithm %s", source, kid, key.algorithm_name
            )
            continue
        keys[kid] = key
    return keys


def jwks_urls(
    configured: Sequence[str],
    routes: RouteTable,
    replicas: Mapping[str, Sequence[str]],
) -> tuple[str, ...]:
    """JWKS_URL's URLs; a path is served by every replica of its route's service."""
    path = configured[0]
    if not path.startswith("/"):
        return tuple(configured)
    try:
        service = routes.match("GET", path).route.service
    except RequestRejected as exc:
        raise ConfigError(
            f"JWKS_URL is the path {path!r}, which no GET route serves ({exc}); "
            "give the path of a route to the service that publishes the keys, "
            "or its http(s) URLs"
        ) from exc
    return tuple(url + path for url in replicas[service])


class JwksSources:
    """Fetches the keys from the first of ``urls`` that serves a JWKS document.

    The URL that answered last is tried first, so a replica that is down
    costs one failed attempt when it goes down, not one at every fetch.
    """

    def __init__(
        self,
        urls: Sequence[str],
        session: Callable[[], aiohttp.ClientSession],
        *,
        timeout_s: float,
    ) -> None:
        if not urls:
            raise ValueError("JwksSources needs at least one URL")
        self.urls = tuple(urls)
        self.timeout_s = timeout_s
        self._session = session
        self._first = 0

    def __str__(self) -> str:
        return ", ".join(self.urls)

    async def __call__(self) -> dict[str, jwt.PyJWK]:
        failures: list[str] = []
        for offset in range(len(self.urls)):
            index = (self._first + offset) % len(self.urls)
            try:
                keys = await self._fetch(self.urls[index])
            except JwksUnavailable as exc:
                failures.append(str(exc))
                continue
            if failures:
                logger.warning(
                    "fetched the signing keys from %s after: %s",
                    self.urls[index],
                    "; ".join(failures),
                )
            self._first = index
            return keys
        raise JwksUnavailable("; ".join(failures))

    async def _fetch(self, url: str) -> dict[str, jwt.PyJWK]:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self._session().get(url, timeout=timeout) as answer:
                if answer.status != 200:
                    raise JwksUnavailable(f"{url} answered {answer.status}")
                document = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JwksUnavailable(
                f"{url} could not be fetched: {type(exc).__name__}: {exc}"
            ) from exc
        return parse_jwks(document, source=url)


class JwksCache:
    """Keys by kid, from ``fetch`` (which returns them by kid).

    A kid nobody published costs at most one fetch per ``min_refetch_s``,
    whoever sends it. A request with an unknown kid that comes while a
    fetch is under way waits for that fetch, at most ``wait_s``; one that
    comes within ``min_refetch_s`` of the last fetch's start is answered
    from the cache at once. So made-up kids cost neither a fetch each nor a
    wait that would hold the request's place, and a rotated key is still
    known at its first use: the users service publishes a key longer than
    ``min_refetch_s`` before it signs with it.
    """

    def __init__(
        self,
        fetch: FetchKeys,
        *,
        source: str,
        min_refetch_s: float = 2.0,
        wait_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.source = source
        self.min_refetch_s = min_refetch_s
        self.wait_s = wait_s
        self._clock = clock
        self._keys: Mapping[str, jwt.PyJWK] = {}
        self._last_fetch = float("-inf")
        self._inflight: asyncio.Task[bool] | None = None

    def __contains__(self, kid: str) -> bool:
        return kid in self._keys

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def get(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``; an unknown kid may start or join one fetch."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        task = self._inflight
        if task is None or task.done():
            if self._clock() - self._last_fetch < self.min_refetch_s:
                return None
            task = self._start()
        # After wait_s the fetch goes on, but this request no longer waits.
        await asyncio.wait((task,), timeout=self.wait_s)
        return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch the key set, or join the fetch under way; False on failure."""
        task = self._inflight
        if task is None or task.done():
            task = self._start()
        return await asyncio.shield(task)

    async def refresh_forever(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` until cancelled (run as a background task)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.refresh()

    def _start(self) -> asyncio.Task[bool]:
        self._last_fetch = self._clock()
        self._inflight = asyncio.create_task(self._refresh())
        return self._inflight

    async def _refresh(self) -> bool:
        try:
            keys = await self._fetch()
        except JwksUnavailable as exc:
            logger.warning("keeping %d cached key(s): %s", len(self._keys), exc)
            return False
        if keys.keys() != self._keys.keys():
            logger.info(
                "signing keys from %s: %s", self.source, ", ".join(sorted(keys))
            )
        self._keys = keys
        return True
