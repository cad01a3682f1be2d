"""The rate limiter against a real Redis: decisions, headers, failures, recovery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import redis as redis_sync
from gateway_testkit import RedisServer, free_port

from services.gateway.errors import Unavailable
from services.gateway.metrics import Registry
from services.gateway.policies import Policy, RouteLimits, policy_header
from services.gateway.ratelimit import (
    Caller,
    Decision,
    LimiterSettings,
    RateLimiter,
    rejection,
)
from services.gateway.redis_wire import RedisAddress, RedisWire

T = TypeVar("T")
BURST = Policy("burst", 2, 1)
SUSTAINED = Policy("sustained", 3, 60)
BY_IP = Policy("by-ip", 2, 60, key="ip")
FAIL_IP = Policy("fail-ip", 2, 60, key="ip", counts="failures")
FAIL_EMAIL = Policy("fail-email", 1, 60, key="body.email", counts="failures")
USER = Caller("ip:203.0.113.7", "u1")


def limits(*policies: Policy, fail: str = "open") -> RouteLimits:
    return RouteLimits(policies, fail, policy_header(policies))


def limiter(
    url: str | None, registry: Registry | None = None, **settings: Any
) -> RateLimiter:
    wire = RedisWire(RedisAddress.from_url(url)) if url else None
    fields = {"timeout_s": 0.5, "breaker_cooldown_s": 0.2, **settings}
    return RateLimiter(wire, LimiterSettings(**fields), registry or Registry())


def run(subject: RateLimiter, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` in a loop of its own; the limiter's connection ends with it."""

    async def main() -> T:
        try:
            return await coroutine
        finally:
            if subject.wire is not None:
                subject.wire.close()

    return asyncio.run(main())


async def decide_all(
    subject: RateLimiter, route: RouteLimits, caller: Caller, count: int
) -> list[Decision | None]:
    return [await subject.decide(route, caller) for _ in range(count)]


def test_limiter_admits_then_refuses_naming_the_policy(redis: RedisServer) -> None:
    subject = limiter(redis.url)

    first, second, third = run(
        subject, decide_all(subject, limits(BURST, SUSTAINED), USER, 3)
    )

    assert first is not None
    assert second is not None
    assert third is not None
    assert (first.allowed, first.source) == (True, "redis")
    assert first.header == b'"burst";r=1;t=1, "sustained";r=2;t=60'
    assert second.header == b'"burst";r=0;t=1, "sustained";r=1;t=60'
    assert not third.allowed
    assert third.violated == BURST
    assert third.retry_after_s == 1
    assert third.header == b'"burst";r=0;t=1, "sustained";r=1;t=60'
    assert (
        subject.registry.value(
            "gateway_ratelimit_decisions_total", source="redis", outcome="rejected"
        )
        == 1
    )


def test_limiter_keys_users_apart(redis: RedisServer) -> None:
    subject = limiter(redis.url)
    route = limits(SUSTAINED)

    async def scenario() -> Decision | None:
        await decide_all(subject, route, USER, 3)
        return await subject.decide(route, Caller("ip:203.0.113.7", "u2"))

    other = run(subject, scenario())

    assert other is not None
    assert other.allowed
    with redis_sync.Redis.from_url(redis.url) as client:
        assert sorted(client.keys("rl:*")) == [
            b"rl:sustained:user:u1",
            b"rl:sustained:user:u2",
        ]


def test_limiter_keys_public_callers_by_address(redis: RedisServer) -> None:
    subject = limiter(redis.url)

    run(subject, subject.decide(limits(SUSTAINED, BY_IP), Caller("ip:198.51.100.4")))

    with redis_sync.Redis.from_url(redis.url) as client:
        assert sorted(client.keys("rl:*")) == [
            b"rl:by-ip:ip:198.51.100.4",
            b"rl:sustained:ip:198.51.100.4",
        ]


def test_limiter_skips_policies_it_cannot_key(redis: RedisServer) -> None:
    subject = limiter(redis.url)

    decision = run(
        subject, subject.decide(limits(FAIL_EMAIL), Caller("ip:x", fields={}))
    )

    assert decision is None


def test_limiter_hashes_body_fields_and_never_keeps_them(redis: RedisServer) -> None:
    subject = limiter(redis.url, key_secret=b"k")
    fields = subject.caller_fields(
        b'{"email": " Ann@Example.org ", "n": 1}', ["email", "n"]
    )
    same = subject.caller_fields(b'{"email": "ann@example.org"}', ["email"])

    run(subject, subject.decide(limits(FAIL_EMAIL), Caller("ip:x", fields=fields)))

    assert fields == same
    assert list(fields) == ["email"]
    assert len(fields["email"]) == 32
    assert (
        limiter(None, key_secret=b"other").caller_fields(
            b'{"email": "ann@example.org"}', ["email"]
        )
        != fields
    )
    with redis_sync.Redis.from_url(redis.url) as client:
        keys = [key.decode() for key in client.keys("rl:*")]
    assert keys == [f"rl:fail-email:email:{fields['email']}"]
    assert "ann" not in keys[0].lower()


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"email": 5}', b"\xff"])
def test_limiter_reads_no_fields_from_bodies_without_them(body: bytes) -> None:
    assert limiter(None).caller_fields(body, ["email"]) == {}


def test_limiter_sends_the_script_again_after_redis_forgot_it(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.gateway.ratelimit")
    subject = limiter(redis.url)

    async def scenario() -> list[Decision | None]:
        await subject.start()
        first = await subject.decide(limits(SUSTAINED), USER)
        with redis_sync.Redis.from_url(redis.url) as client:
            client.script_flush()
        second = await subject.decide(limits(SUSTAINED), USER)
        third = await subject.decide(limits(SUSTAINED), USER)
        return [first, second, third]

    decisions = run(subject, scenario())

    assert [d.source for d in decisions if d] == ["redis", "redis", "redis"]
    assert [r.getMessage() for r in caplog.records] == [
        "Redis does not know the rate-limit script; sending it"
    ]


def test_limiter_falls_back_to_the_local_log_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()
    subject = limiter(f"redis://127.0.0.1:{free_port()}/0", registry, processes=2)
    route = limits(Policy("p", 4, 60))

    decisions = run(subject, decide_all(subject, route, USER, 3))

    # Two processes share the limit of 4: this one allows 2 on its own.
    assert [(d.allowed, d.source) for d in decisions if d] == [
        (True, "local"),
        (True, "local"),
        (False, "local"),
    ]
    assert decisions[0] is not None
    assert decisions[0].header == b'"p";r=1;t=60'
    assert registry.value("gateway_ratelimit_redis_failures_total") == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "without Redis" in w]) == 1
    assert warnings[0].startswith("rate limits decided without Redis: 1 in the last ")
    assert (
        "decided in this process: cannot connect to Redis at 127.0.0.1:"
        in (warnings[0])
    )


def test_limiter_fails_closed_with_503_and_retry_after() -> None:
    subject = limiter(f"redis://127.0.0.1:{free_port()}/0", breaker_failures=1)

    with pytest.raises(Unavailable) as caught:
        run(subject, subject.decide(limits(SUSTAINED, fail="closed"), USER))

    assert str(caught.value) == (
        "rate limits cannot be checked right now and this route does not run "
        "without them; retry in 1s"
    )
    assert caught.value.headers == (("retry-after", "1"),)
    assert subject.registry.value("gateway_ratelimit_failed_closed_total") == 1


def test_limiter_without_redis_decides_locally() -> None:
    subject = limiter(None)

    decision = run(subject, subject.decide(limits(SUSTAINED), USER))

    assert decision is not None
    assert decision.source == "local"


def test_limiter_stops_asking_a_failing_redis_and_recovers(
    redis: RedisServer,
) -> None:
    subject = limiter(redis.url, breaker_failures=2, breaker_cooldown_s=0.2)
    route = limits(SUSTAINED)

    async def scenario() -> tuple[list[str], int, list[str]]:
        redis.stop()
        during = [d.source for d in await decide_all(subject, route, USER, 4) if d]
        asked = subject.registry.value("gateway_ratelimit_redis_failures_total")
        redis.start()
        polls = 0
        deadline = asyncio.get_running_loop().time() + 5.0
        while asyncio.get_running_loop().time() < deadline:
            polls += 1
            decision = await subject.decide(route, USER)
            if decision is not None and decision.source == "redis":
                break
            await asyncio.sleep(0.01)
        after = [d.source for d in await decide_all(subject, route, USER, 2) if d]
        return during, asked, after

    during, asked, after = run(subject, scenario())

    # Two failures opened the breaker; the next two were not sent to Redis.
    assert during == ["local"] * 4
    assert asked == 2
    assert after == ["redis", "redis"]
    assert subject.breaker.state == "closed"
    assert (
        subject.registry.value("gateway_ratelimit_breaker_transitions_total", to="open")
        == 1
    )
    assert (
        subject.registry.value(
            "gateway_ratelimit_breaker_transitions_total", to="closed"
        )
        == 1
    )


def test_limiter_falls_back_when_the_script_fails(redis: RedisServer) -> None:
    with redis_sync.Redis.from_url(redis.url) as client:
        client.set("rl:sustained:user:u1", "not a list")
    subject = limiter(redis.url)

    decision = run(subject, subject.decide(limits(SUSTAINED), USER))

    assert decision is not None
    assert decision.source == "local"


@pytest.mark.parametrize(("status", "kept"), [(401, 1), (200, 0), (0, 0)])
def test_limiter_gives_back_failure_budgets_unless_the_answer_is_401(
    redis: RedisServer, status: int, kept: int
) -> None:
    subject = limiter(redis.url)
    fields = subject.caller_fields(b'{"email": "a@b.c"}', ["email"])
    caller = Caller("ip:198.51.100.9", fields=fields)

    async def scenario() -> Decision | None:
        decision = await subject.decide(limits(FAIL_IP, FAIL_EMAIL), caller)
        assert decision is not None
        await subject.settle(decision, status)
        return decision

    decision = run(subject, scenario())

    assert decision is not None
    assert decision.header == b""
    assert decision.reserved == (
        "rl:fail-ip:ip:198.51.100.9",
        f"rl:fail-email:email:{fields['email']}",
    )
    with redis_sync.Redis.from_url(redis.url) as client:
        assert [client.llen(key) for key in decision.reserved] == [kept, kept]


def test_limiter_gives_back_local_failure_budgets() -> None:
    subject = limiter(None)
    route = limits(FAIL_IP)
    caller = Caller("ip:198.51.100.9")

    async def scenario() -> list[bool]:
        allowed = []
        for status in (200, 401, 401, 200):
            decision = await subject.decide(route, caller)
            assert decision is not None
            allowed.append(decision.allowed)
            if decision.allowed:
                await subject.settle(decision, status)
        return allowed

    assert run(subject, scenario()) == [True, True, True, False]


def test_rejection_names_policy_and_subject() -> None:
    def refused(policy: Policy) -> Decision:
        return Decision(False, "redis", b"", violated=policy, retry_after_s=7)

    as_user = rejection(refused(BURST), authenticated=True)
    as_ip = rejection(refused(BURST), authenticated=False)
    as_email = rejection(refused(FAIL_EMAIL), authenticated=False)

    assert as_user.status == 429
    assert str(as_user) == (
        "rate limit 'burst' (2 requests per 1s for this user) is used up; retry in 7s"
    )
    assert str(as_ip).endswith("(2 requests per 1s for this client address) is "
                               "used up; retry in 7s")  # fmt: skip
    assert str(as_email) == (
        "rate limit 'fail-email' (1 failed logins per 60s for this email) is used "
        "up; retry in 7s"
    )
    assert as_user.headers == (("retry-after", "7"),)
    assert as_user.extra == {"policy": "burst", "retry_after_s": 7}
    with pytest.raises(ValueError):
        rejection(Decision(True, "redis", b""), authenticated=True)
