"""Waiting for cross-service effects: poll with a deadline, never sleep blindly.

::

    enrollment = eventually(
        lambda: client.get("/api/v1/enrollments/me").json()["items"],
        until=lambda items: len(items) == 3,
        what="three enrollments after the program was assigned",
    )

On timeout the assertion says what was awaited, for how long, how many polls
it made and the last value seen (or the last error the probe raised).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class EventuallyTimeout(AssertionError):
    """The awaited condition did not hold before the deadline."""

    def __init__(
        self,
        what: str,
        timeout_s: float,
        polls: int,
        last: object,
        error: BaseException | None,
    ) -> None:
        self.what = what
        self.polls = polls
        self.last = last
        seen = (
            f"last error: {error!r}" if error is not None else f"last value: {last!r}"
        )
        super().__init__(f"waited {timeout_s:g}s for {what}: {polls} poll(s); {seen}")


def eventually(
    probe: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call ``probe`` until ``until(value)`` is true; return that value.

    Exceptions from ``probe`` count as "not yet" (a service may still be
    catching up) and the last one is reported if time runs out.
    """
    deadline = time.monotonic() + timeout_s
    polls = 0
    last: object = None
    error: BaseException | None = None
    while True:
        polls += 1
        try:
            value = probe()
        except Exception as exc:  # "not yet"; the last one is reported on timeout
            error = exc
        else:
            error = None
            last = value
            if until(value):
                return value
        if time.monotonic() >= deadline:
            raise EventuallyTimeout(what, timeout_s, polls, last, error)
        logger.debug("still waiting for %s (poll %d)", what, polls)
        time.sleep(interval_s)
