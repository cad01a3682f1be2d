"""The circuit breaker, the counters and the throttled warning, on a fake clock."""

from __future__ import annotations

import logging

import pytest

from services.gateway.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from services.gateway.metrics import Registry, ThrottledWarning


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    changes: list[str] = []
    breaker = CircuitBreaker(
        "r", failures=3, cooldown_s=2.0, clock=clock, on_change=changes.append
    )

    breaker.failed()
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    breaker.failed()
    assert breaker.state == CLOSED
    breaker.failed()

    assert breaker.state == OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == 2.0
    assert changes == [OPEN]


def test_breaker_lets_one_probe_through_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker("r", failures=1, cooldown_s=2.0, clock=clock)
    breaker.failed()
    clock.now += 2.0

    first, second = breaker.allow(), breaker.allow()

    assert (first, second) == (True, False)
    assert breaker.state == HALF_OPEN
    assert breaker.retry_after_s() == 0.0


def test_breaker_closes_when_the_probe_succeeds() -> None:
    clock = Clock()
    breaker = CircuitBreaker("r", failures=1, cooldown_s=1.0, clock=clock)
    breaker.failed()
    clock.now += 1.0
    breaker.allow()

    breaker.succeeded()

    assert breaker.state == CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_breaker_opens_again_when_the_probe_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.gateway.breaker")
    clock = Clock()
    breaker = CircuitBreaker("redis", failures=1, cooldown_s=1.0, clock=clock)
    breaker.failed()
    clock.now += 1.0
    breaker.allow()

    breaker.failed()

    assert breaker.state == OPEN
    assert not breaker.allow()
    assert [r.getMessage() for r in caplog.records] == [
        "circuit breaker redis: closed -> open for 1s after 1 failure(s)",
        "circuit breaker redis: open -> half-open",
        "circuit breaker redis: half-open -> open for 1s after 2 failure(s)",
    ]


def test_registry_counts_by_labels_and_renders_prometheus_text() -> None:
    registry = Registry()
    allowed = registry.counter("decisions_total", "decisions", outcome="allowed")
    registry.counter("decisions_total", "decisions", outcome="rejected").inc(2)
    registry.counter("plain_total").inc()

    allowed.inc()
    allowed.inc()

    assert registry.value("decisions_total", outcome="allowed") == 2
    assert registry.value("decisions_total", outcome="other") == 0
    assert registry.total("decisions_total") == 4
    assert registry.render() == (
        "# HELP decisions_total decisions\n"
        "# TYPE decisions_total counter\n"
        'decisions_total{outcome="allowed"} 2\n'
        'decisions_total{outcome="rejected"} 2\n'
        "# TYPE plain_total counter\n"
        "plain_total 1\n"
    )


def test_registry_escapes_label_values() -> None:
    registry = Registry()
    registry.counter("seen_total", route='/a"b\\c\nd').inc()

    assert 'seen_total{route="/a\\"b\\\\c\\nd"} 1' in registry.render()


def test_throttled_warning_writes_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    warning = ThrottledWarning(
        logging.getLogger("test.throttle"), "fell back", clock=clock
    )

    warning.note("first")
    for _ in range(5):
        clock.now += 0.1
        warning.note("later")
    clock.now += 0.6
    warning.note("last")
    warning.flush("nothing pending")
    warning.note("after")
    warning.flush("recovered")

    assert [r.getMessage() for r in caplog.records] == [
        "fell back: 1 in the last 0.0s; first",
        "fell back: 6 in the last 1.1s; last",
        "fell back: 1 in the last 0.0s; recovered",
    ]
    assert {r.levelno for r in caplog.records} == {logging.WARNING}
