"""The public keys that sign access tokens, fetched from a JWKS URL and cached.

The cache is refreshed in the background, fetched again (at most once per
``min_refetch_s``) when a token names a kid it does not know, and keeps the
last good key set when the JWKS URL cannot be reached, so a short outage of
the users service does not lock everyone out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jwt

logger = logging.getLogger(__name__)

ALGORITHMS = frozenset({"ES256", "EdDSA"})

FetchJwks = Callable[[], Awaitable[Any]]


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


class JwksCache:
    """Keys by kid, from ``fetch`` (which returns the parsed JWKS document).

    A kid nobody published is answered by at most one fetch per
    ``min_refetch_s``: a request that comes sooner waits for the next
    allowed fetch rather than fail, so a key that was just rotated in is
    accepted at its first use (within ``min_refetch_s``) even while others
    send made-up kids.
    """

    def __init__(
        self,
        fetch: FetchJwks,
        *,
        source: str,
        min_refetch_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._fetch = fetch
        self.source = source
        self.min_refetch_s = min_refetch_s
        self._clock = clock
        self._sleep = sleep
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetches_started = 0
        self._last_unknown_kid_fetch = float("-inf")
        self._inflight: asyncio.Task[bool] | None = None

    def __contains__(self, kid: str) -> bool:
        return kid in self._keys

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def get(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``; an unknown kid triggers a (rate-limited) refetch."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        started_before = self._fetches_started
        wait_s = self._last_unknown_kid_fetch + self.min_refetch_s - self._clock()
        if wait_s > 0:
            await self._sleep(wait_s)
        if kid not in self._keys and self._fetches_started == started_before:
            # Only a fetch that started after this kid was seen can know it.
            self._last_unknown_kid_fetch = self._clock()
            await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch the key set once, shared by concurrent callers; False on failure."""
        if self._inflight is None or self._inflight.done():
            self._fetches_started += 1
            self._inflight = asyncio.ensure_future(self._refresh())
        task = self._inflight
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._inflight is task:
                self._inflight = None

    async def refresh_forever(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` until cancelled (run as a background task)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.refresh()

    async def _refresh(self) -> bool:
        try:
            keys = parse_jwks(await self._fetch(), source=self.source)
        except JwksUnavailable as exc:
            logger.warning("keeping %d cached key(s): %s", len(self._keys), exc)
            return False
        if keys.keys() != self._keys.keys():
            logger.info(
                "signing keys from %s: %s", self.source, ", ".join(sorted(keys))
            )
        self._keys = keys
        return True
