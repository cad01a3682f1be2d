"""Redis goes away under traffic: the gateway keeps answering, then recovers.

The gateway runs in this process (so its counters can be read) under a
real uvicorn, with a redis-server of the test's own that is killed (or
frozen) and brought back while two clients keep sending requests: one to a
route that fails open, one to a route that fails closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis as redis_sync
from gateway_testkit import GatewayFactory, RedisServer, SigningKey

from services.gateway.app import Gateway

REDIS_TIMEOUT_S = 0.02
# A request may wait on Redis up to twice its timeout (a late deadline gives
# Redis one more, see redis_wire._Deadline); beyond that, and beyond the
# slowest request while Redis was well, only this much for the scheduling
# of a crowded machine. A timeout of a few tenths of a second must not fit.
SCHEDULING_SLACK_S = 0.1
# Requests decided by Redis before the outage, whose slowest sets the pace.
BEFORE = 60
CLOSED_DETAIL = (
    "rate limits cannot be checked right now and this route does not run "
    "without them; retry in "
)
ROUTES: dict[str, Any] = {
    "policies": [{"name": "roomy", "limit": 100_000, "window_s": 60}],
    "routes": [
        {"path": "/.well-known/jwks.json", "methods": ["GET"], "service": "users",
         "role": "public"},
    ],
    "versions": {
        "v1": {
            "limits": ["roomy"],
            "routes": [
                {"path": "/users/me", "methods": ["GET"], "service": "users",
                 "role": "user"},
                {"path": "/strict", "methods": ["GET"], "service": "users",
                 "role": "public", "limits_fail": "closed"},
            ],
        }
    },
}  # fmt: skip


@dataclass
class Traffic:
    """What the clients saw, by phase: (path, status, detail, seconds taken)."""

    phase: str = "before"
    seen: list[tuple[str, str, int, str, float]] = field(default_factory=list)

    def of(self, phase: str, path: str) -> list[tuple[int, str, float]]:
        return [(s, d, t) for ph, p, s, d, t in self.seen if ph == phase and p == path]


@contextmanager
def traffic(client: httpx.Client, token: str) -> Iterator[Traffic]:
    """Two clients sending requests back to back until the block ends."""
    record = Traffic()
    stop = threading.Event()

    def send(path: str, headers: dict[str, str]) -> None:
        while not stop.is_set():
            phase = record.phase
            started = time.monotonic()
            answer = client.get(path, headers=headers)
            taken = time.monotonic() - started
            detail = (
                answer.json().get("detail", "") if answer.status_code >= 400 else ""
            )
            record.seen.append((phase, path, answer.status_code, detail, taken))

    threads = [
        threading.Thread(
            target=send,
            args=("/api/v1/users/me", {"Authorization": f"Bearer {token}"}),
        ),
        threading.Thread(target=send, args=("/api/v1/strict", {})),
    ]
    for thread in threads:
        thread.start()
    try:
        yield record
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s}s for {what}")
        time.sleep(0.01)


def decisions(app: Gateway, source: str) -> int:
    return app.metrics.value(
        "gateway_ratelimit_decisions_total", source=source, outcome="allowed"
    )


def start(gateway: GatewayFactory, redis: RedisServer) -> tuple[httpx.Client, Gateway]:
    client = gateway(
        routes=ROUTES,
        redis_url=redis.url,
        redis_timeout_s=REDIS_TIMEOUT_S,
        breaker_failures=3,
        breaker_cooldown_s=0.3,
    )
    return client, gateway.apps[0]  # type: ignore[attr-defined]


def check_outage(record: Traffic) -> None:
    """During the outage: per route policy, no other 5xx, nothing slow."""
    opened = record.of("outage", "/api/v1/users/me")
    closed = record.of("outage", "/api/v1/strict")
    assert opened, "no traffic to the route that fails open during the outage"
    assert closed, "no traffic to the route that fails closed during the outage"
    assert {status for status, _, _ in opened} == {200}
    assert {status for status, _, _ in closed} <= {200, 503}
    assert 503 in {status for status, _, _ in closed}
    assert all(
        detail.startswith(CLOSED_DETAIL)
        for status, detail, _ in closed
        if status == 503
    )
    slowest, bound = slowest_since_the_outage(record), latency_bound(record)
    assert slowest < bound, f"a request took {slowest:.3f}s, over {bound:.3f}s"


def latency_bound(record: Traffic) -> float:
    """The longest a request may take without Redis, measured in this run."""
    before = max(taken for phase, *_, taken in record.seen if phase == "before")
    return before + 2 * REDIS_TIMEOUT_S + SCHEDULING_SLACK_S


def slowest_since_the_outage(record: Traffic) -> float:
    return max(taken for phase, *_, taken in record.seen if phase != "before")


def check_recovery(
    record: Traffic, app: Gateway, redis: RedisServer, token_sub: str
) -> None:
    after_opened = record.of("after", "/api/v1/users/me")
    after_closed = record.of("after", "/api/v1/strict")
    assert after_opened
    assert after_closed
    assert {status for status, _, _ in after_closed} == {200}
    with redis_sync.Redis.from_url(redis.url) as client:
        assert client.llen(f"rl:roomy:user:{token_sub}") > 0
        assert client.llen("rl:roomy:ip:127.0.0.1") > 0
    assert app.limiter.breaker.state == "closed"


def test_gateway_serves_through_a_redis_crash_and_recovers(
    gateway: GatewayFactory,
    redis: RedisServer,
    signing_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, app = start(gateway, redis)
    caplog.set_level(logging.WARNING, logger="services.gateway.ratelimit")

    with traffic(client, signing_key.sign(sub="steady")) as record:
        wait_until(lambda: decisions(app, "redis") >= BEFORE, "decisions by Redis")
        record.phase = "outage"
        redis.stop()
        local = decisions(app, "local")
        wait_until(lambda: decisions(app, "local") >= local + 50, "local decisions")
        record.phase = "restarting"
        redis.start()
        from_redis = decisions(app, "redis")
        wait_until(lambda: decisions(app, "redis") >= from_redis + 20, "Redis again")
        record.phase = "after"
        wait_until(lambda: len(record.of("after", "/api/v1/strict")) >= 5, "traffic")

    check_outage(record)
    check_recovery(record, app, redis, "steady")
    fallbacks = [r for r in caplog.records if "decided without Redis" in r.getMessage()]
    # Every fallback decision was counted, in a few throttled lines.
    assert 1 <= len(fallbacks) < decisions(app, "local")
    assert app.metrics.value("gateway_ratelimit_failed_closed_total") > 0


def test_gateway_stops_waiting_on_a_frozen_redis_and_recovers(
    gateway: GatewayFactory, redis: RedisServer, signing_key: SigningKey
) -> None:
    client, app = start(gateway, redis)

    with traffic(client, signing_key.sign(sub="patient")) as record:
        wait_until(lambda: decisions(app, "redis") >= BEFORE, "decisions by Redis")
        record.phase = "outage"
        redis.pause()
        try:
            local = decisions(app, "local")
            wait_until(lambda: decisions(app, "local") >= local + 50, "local decisions")
            # Frozen, Redis costs each request at most one timeout, and the
            # breaker keeps most from waiting at all.
            assert app.metrics.value("gateway_ratelimit_redis_failures_total") < (
                decisions(app, "local")
                + app.metrics.value("gateway_ratelimit_failed_closed_total")
            )
        finally:
            record.phase = "restarting"
            redis.resume()
        from_redis = decisions(app, "redis")
        wait_until(lambda: decisions(app, "redis") >= from_redis + 20, "Redis again")
        record.phase = "after"
        wait_until(lambda: len(record.of("after", "/api/v1/strict")) >= 5, "traffic")

    check_outage(record)
    check_recovery(record, app, redis, "patient")
