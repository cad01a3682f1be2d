"""The sliding-window-log script in a real Redis, and its in-memory twin."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis as redis_sync
from gateway_testkit import RedisServer

from services.gateway.redis_wire import RedisAddress, RedisWire
from services.gateway.sliding_log import SCRIPT, SCRIPT_SHA, LocalLog

S = 1_000_000  # µs


def run(server: RedisServer, keys: Sequence[str], args: Sequence[int]) -> list[int]:
    with redis_sync.Redis.from_url(server.url) as client:
        reply = client.eval(SCRIPT, len(keys), *keys, *args)
    assert isinstance(reply, list)
    return reply


def test_script_admits_the_limit_then_refuses_with_the_wait(
    redis: RedisServer,
) -> None:
    answers = [run(redis, ["k"], [3, 60 * S]) for _ in range(4)]

    assert [a[0] for a in answers] == [0, 0, 0, 1]
    assert [a[3] for a in answers] == [2, 1, 0, 0]
    first_admitted_at = answers[0][2]
    refused = answers[3]
    # The refused request waits until the first admission leaves the window.
    assert refused[1] == first_admitted_at + 60 * S - refused[2]
    assert 59 * S < refused[1] <= 60 * S
    assert refused[4] == refused[1]


def test_script_charges_no_policy_when_one_refuses(redis: RedisServer) -> None:
    run(redis, ["narrow"], [1, 60 * S])

    refused = run(redis, ["wide", "narrow"], [10, 60 * S, 1, 60 * S])

    with redis_sync.Redis.from_url(redis.url) as client:
        assert client.llen("wide") == 0
        assert client.llen("narrow") == 1
    assert refused[0] == 2
    assert refused[3:5] == [10, 60 * S]  # the wide budget, untouched


def test_script_names_the_policy_whose_budget_comes_back_last(
    redis: RedisServer,
) -> None:
    run(redis, ["short", "long"], [1, 1 * S, 1, 60 * S])

    refused = run(redis, ["short", "long"], [1, 1 * S, 1, 60 * S])

    assert refused[0] == 2
    assert refused[1] > 59 * S


def test_script_forgets_admissions_that_left_the_window(redis: RedisServer) -> None:
    with redis_sync.Redis.from_url(redis.url) as client:
        now_s, now_us = client.time()
        now = now_s * S + now_us
        # Two old admissions and one recent one, as the script would store them.
        client.rpush("k", now - 10 * S, now - 5 * S, now - S // 2)

        admitted = run(redis, ["k"], [2, 2 * S])

        assert admitted[0] == 0
        assert client.llen("k") == 2
        assert 0 < client.pttl("k") <= 2000


def test_script_drops_a_log_that_is_entirely_old(redis: RedisServer) -> None:
    with redis_sync.Redis.from_url(redis.url) as client:
        client.rpush("k", 1, 2, 3)

        admitted = run(redis, ["k"], [1, 1 * S])

        assert admitted[0] == 0
        assert client.llen("k") == 1


def test_script_refuses_when_a_lowered_limit_is_exceeded(redis: RedisServer) -> None:
    for _ in range(5):
        run(redis, ["k"], [5, 60 * S])

    refused = run(redis, ["k"], [2, 60 * S])

    assert refused[0] == 1
    assert refused[3] == 0


def test_script_sha_is_what_redis_computes(redis: RedisServer) -> None:
    with redis_sync.Redis.from_url(redis.url) as client:
        assert client.script_load(SCRIPT) == SCRIPT_SHA


def test_local_log_answers_like_the_script() -> None:
    now = [100.0]
    log = LocalLog(clock=lambda: now[0])

    answers = [log.decide(["a", "b"], [2, 60 * S, 10, 1 * S]) for _ in range(3)]
    now[0] += 0.5
    later = log.decide(["b"], [10, 1 * S])

    assert [a[0] for a in answers] == [0, 0, 1]
    assert answers[0] == [0, 0, 100 * S, 1, 60 * S, 9, 1 * S]
    assert answers[2] == [1, 60 * S, 100 * S, 0, 60 * S, 8, 1 * S]
    # Half a second on, both admissions of "b" are still in its 1 s window.
    assert later == [0, 0, 100_500_000, 7, S // 2]


def test_local_log_forgets_admissions_that_left_the_window() -> None:
    now = [0.0]
    log = LocalLog(clock=lambda: now[0])
    log.decide(["a"], [1, 1 * S])
    now[0] += 2

    assert log.decide(["a"], [1, 1 * S])[0] == 0
    assert log.decide(["a"], [1, 1 * S])[0] == 1
    assert len(log) == 1


def test_local_log_keeps_at_most_max_keys() -> None:
    log = LocalLog(max_keys=2)

    for key in ("a", "b", "c"):
        log.decide([key], [5, 60 * S])

    assert len(log) == 2


def test_local_log_refund_takes_back_one_admission() -> None:
    log = LocalLog(clock=lambda: 1.0)
    stamp = log.decide(["a"], [1, 60 * S])[2]

    log.refund(["a", "absent"], stamp)

    assert log.decide(["a"], [1, 60 * S])[0] == 0


def test_script_and_local_log_admit_at_most_the_limit_in_any_window(
    redis: RedisServer,
) -> None:
    # A burst of concurrent decisions on one key: exactly the limit gets in.
    async def hammer() -> list[int]:
        wire = RedisWire(RedisAddress.from_url(redis.url))
        try:
            replies = await asyncio.gather(
                *(wire.call("EVAL", SCRIPT, 2, "x", "y", 50, 60 * S, 1000, 60 * S,
                            timeout_s=10.0)
                  for _ in range(200))
            )  # fmt: skip
        finally:
            wire.close()
        return [reply[0] for reply in replies]

    blocked = asyncio.run(hammer())

    assert blocked.count(0) == 50
    assert set(blocked[50:]) <= {1}
