"""A circuit breaker: stop waiting on a dependency that keeps failing.

Closed, calls go through and consecutive failures are counted; after
``failures`` of them it opens, and calls are refused at once for
``cooldown_s``. Then it is half-open: one call (the probe) goes through
while the others are still refused; the probe's success closes the
breaker, its failure opens it for another cool-down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.state = CLOSED
        self._clock = clock
        self._on_change = on_change
        self._failed = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """Whether a call may go through now (the probe, when half-open)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self._clock() < self._opened_at + self.cooldown_s:
                return False
            self._change(HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def retry_after_s(self) -> float:
        """Seconds until the breaker lets a probe through (0 unless open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def succeeded(self) -> None:
        self._failed = 0
        self._probing = False
        if self.state != CLOSED:
            self._change(CLOSED)

    def failed(self) -> None:
        self._failed += 1
        self._probing = False
        if self.state == HALF_OPEN or (
            self.state == CLOSED and self._failed >= self.failures
        ):
            self._opened_at = self._clock()
            self._change(OPEN)

    def _change(self, state: str) -> None:
        previous, self.state = self.state, state
        level = logging.INFO if state == HALF_OPEN else logging.WARNING
        logger.log(
            level,
            "circuit breaker %s: %s -> %s%s",
            self.name,
            previous,
            state,
            f" for {self.cooldown_s:g}s after {self._failed} failure(s)"
            if state == OPEN
            else "",
        )
        if self._on_change is not None:
            self._on_change(state)
