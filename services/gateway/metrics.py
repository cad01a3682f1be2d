"""In-process counters, Prometheus-style, and log lines that do not flood.

Counters live in a ``Registry``; each (name, labels) pair is created once and
then costs one addition per event, so they are cheap enough for the request
path. ``Registry.render`` writes the Prometheus text format the gateway
serves at /metrics; tests read ``Registry.value``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Counter:
    __slots__ = ("help", "labels", "name", "value")

    def __init__(self, name: str, labels: tuple[tuple[str, str], ...], help: str):
        self.name = name
        self.labels = labels
        self.help = help
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Registry:
    """Counters by name and labels."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], Counter] = {}

    def counter(self, name: str, help: str = "", **labels: str) -> Counter:
        key = (name, tuple(sorted(labels.items())))
        found = self._counters.get(key)
        if found is None:
            found = self._counters[key] = Counter(name, key[1], help)
        return found

    def value(self, name: str, **labels: str) -> int:
        """The count of ``name`` with exactly these labels; 0 if never counted."""
        found = self._counters.get((name, tuple(sorted(labels.items()))))
        return found.value if found is not None else 0

    def total(self, name: str) -> int:
        """The count of ``name`` summed over every label set."""
        return sum(c.value for (n, _), c in self._counters.items() if n == name)

    def render(self) -> str:
        """Every counter in the Prometheus text exposition format."""
        lines: list[str] = []
        named: dict[str, list[Counter]] = {}
        for counter in self._counters.values():
            named.setdefault(counter.name, []).append(counter)
        for name in sorted(named):
            counters = named[name]
            if counters[0].help:
                lines.append(f"# HELP {name} {counters[0].help}")
            lines.append(f"# TYPE {name} counter")
            for counter in counters:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in counter.labels)
                lines.append(
                    f"{name}{{{labels}}} {counter.value}"
                    if labels
                    else f"{name} {counter.value}"
                )
        return "\n".join(lines) + "\n"


class ThrottledWarning:
    """A WARNING at most once per ``interval_s``, counting what it stood for.

    ``note`` is called for every event; the line says how many events
    happened since the previous line and the latest reason.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._interval_s = interval_s
        self._clock = clock
        self._pending = 0
        self._since = clock()
        self._next_at = float("-inf")

    def note(self, reason: str) -> None:
        self._pending += 1
        now = self._clock()
        if now >= self._next_at:
            self._emit(now, reason)

    def flush(self, reason: str) -> None:
        """Write what is pending now, if anything (e.g. when the cause is gone)."""
        if self._pending:
            self._emit(self._clock(), reason)

    def _emit(self, now: float, reason: str) -> None:
        self._logger.warning(
            "%s: %d in the last %.1fs; %s",
            self._what,
            self._pending,
            now - self._since,
            reason,
        )
        self._pending = 0
        self._since = now
        self._next_at = now + self._interval_s


def _escape(value: str) -> str:
    """A label value as the exposition format quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
