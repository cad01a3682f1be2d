"""The replicas of each service, taken in turn, skipping those that refuse us.

Health is passive: a replica that refuses a connection is left out for
``cooldown_s``, then tried again by the next request that reaches it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.gateway.errors import ConfigError
from services.gateway.settings import upstream_variable

logger = logging.getLogger(__name__)


@dataclass
class Replica:
    url: str
    down_until: float = 0.0


class Upstream:
    """One service: its replicas in round-robin order."""

    def __init__(
        self,
        service: str,
        urls: Sequence[str],
        *,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ConfigError(f"service {service!r} has no replica URLs")
        self.service = service
        self.replicas = tuple(Replica(url) for url in urls)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._next = 0

    def pick(self) -> Replica | None:
        """The next replica not resting after a refusal, or None if all are."""
        now = self._clock()
        count = len(self.replicas)
        for _ in range(count):
            replica = self.replicas[self._next % count]
            self._next = (self._next + 1) % count
            if replica.down_until <= now:
                return replica
        return None

    def mark_down(self, replica: Replica, reason: str) -> None:
        replica.down_until = self._clock() + self.cooldown_s
        logger.warning(
            "replica %s of %s is down for %.1fs: %s",
            replica.url,
            self.service,
            self.cooldown_s,
            reason,
        )


def build_upstreams(
    services: frozenset[str],
    urls: Mapping[str, Sequence[str]],
    *,
    cooldown_s: float,
) -> dict[str, Upstream]:
    """One Upstream per service the routes name; each needs its replica list."""
    missing = sorted(service for service in services if service not in urls)
    if missing:
        variables = ", ".join(upstream_variable(service) for service in missing)
        raise ConfigError(
            f"the route table names service(s) {', '.join(missing)} but "
            f"{variables} is not set; set it to comma-separated replica URLs"
        )
    return {
        service: Upstream(service, urls[service], cooldown_s=cooldown_s)
        for service in sorted(services)
    }
