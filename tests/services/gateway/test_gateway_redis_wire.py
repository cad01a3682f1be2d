"""The lean Redis connection: pipelining, deadlines, lost and refused connections."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
import redis as redis_sync
import uvloop
from gateway_testkit import RedisServer, free_port

from services.gateway.errors import ConfigError
from services.gateway.redis_wire import (
    RedisAddress,
    RedisFailure,
    RedisReplyError,
    RedisWire,
)


def test_address_from_url_reads_every_part() -> None:
    address = RedisAddress.from_url("rediss://me:p%40ss@cache.local:6380/2")

    assert address == RedisAddress("cache.local", 6380, 2, "me", "p@ss", tls=True)
    assert address.greeting() == [("AUTH", "me", "p@ss"), ("SELECT", 2)]
    assert RedisAddress.from_url("redis://h").greeting() == []
    assert RedisAddress.from_url("redis://:pw@h/0").greeting() == [("AUTH", "pw")]


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://h:1", "REDIS_URL is 'http://h:1'; use redis://host:port/db or "
                    "rediss://..."),
     ("redis://h:1/x", "REDIS_URL 'redis://h:1/x' names database 'x'; use 0-15"),
     ("redis://h:99999/0", "REDIS_URL 'redis://h:99999/0' has a bad port: Port out "
                           "of range 0-65535")],
)  # fmt: skip
def test_address_from_url_names_the_bad_url(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisAddress.from_url(url)

    assert str(caught.value) == message


def test_wire_answers_concurrent_calls_in_order(redis: RedisServer) -> None:
    async def calls() -> list[object]:
        wire = RedisWire(RedisAddress.from_url(redis.url))
        try:
            return list(
                await asyncio.gather(
                    *(wire.call("INCR", "n", timeout_s=5.0) for _ in range(300))
                )
            )
        finally:
            wire.close()

    assert asyncio.run(calls()) == list(range(1, 301))


def test_wire_raises_error_replies(redis: RedisServer) -> None:
    async def call() -> None:
        wire = RedisWire(RedisAddress.from_url(redis.url))
        try:
            await wire.call("NOSUCHCOMMAND", timeout_s=5.0)
        finally:
            wire.close()

    with pytest.raises(RedisReplyError) as caught:
        asyncio.run(call())

    assert str(caught.value).startswith("ERR unknown command 'NOSUCHCOMMAND'")


def test_wire_authenticates_and_selects_the_database(redis: RedisServer) -> None:
    with redis_sync.Redis.from_url(redis.url) as admin:
        admin.config_set("requirepass", "s3cret")

    async def call(url: str) -> object:
        wire = RedisWire(RedisAddress.from_url(url))
        try:
            return await wire.call("SET", "where", "db3", timeout_s=5.0)
        finally:
            wire.close()

    answered = asyncio.run(call(f"redis://:s3cret@127.0.0.1:{redis.port}/3"))
    with pytest.raises(RedisReplyError) as refused:
        asyncio.run(call(f"redis://:wrong@127.0.0.1:{redis.port}/3"))

    with redis_sync.Redis(port=redis.port, db=3, password="s3cret") as check:
        assert check.get("where") == b"db3"
    assert answered == b"OK"
    assert str(refused.value).startswith("Redis refused the greeting: WRONGPASS")


def test_wire_reports_a_refused_connection_with_the_address() -> None:
    port = free_port()

    async def call() -> None:
        await RedisWire(RedisAddress("127.0.0.1", port)).call("PING", timeout_s=1.0)

    with pytest.raises(RedisFailure) as caught:
        asyncio.run(call())

    assert str(caught.value) == (
        f"cannot connect to Redis at 127.0.0.1:{port}: Connection refused"
    )


def test_wire_times_out_on_a_paused_redis_and_keeps_replies_in_order(
    redis: RedisServer,
) -> None:
    async def scenario() -> tuple[str, object]:
        wire = RedisWire(RedisAddress.from_url(redis.url))
        try:
            await wire.call("SET", "k", "before", timeout_s=5.0)
            redis.pause()
            try:
                await wire.call("GET", "k", timeout_s=0.02)
            except RedisFailure as exc:
                missed = str(exc)
            finally:
                redis.resume()
            # The late answer to GET must not be taken for this SET's answer.
            after = await wire.call("SET", "k", "after", timeout_s=5.0)
            return missed, after
        finally:
            wire.close()

    missed, after = asyncio.run(scenario())

    assert missed == "Redis did not answer within 20 ms"
    assert after == b"OK"


def test_wire_close_fails_pending_calls_and_the_next_call_reconnects(
    redis: RedisServer,
) -> None:
    async def scenario() -> tuple[str, object]:
        wire = RedisWire(RedisAddress.from_url(redis.url))
        await wire.call("PING", timeout_s=5.0)
        redis.pause()
        pending = asyncio.ensure_future(wire.call("PING", timeout_s=5.0))
        await asyncio.sleep(0)  # let it be sent
        wire.close("the breaker opened")
        try:
            await pending
        except RedisFailure as exc:
            failed = str(exc)
        finally:
            redis.resume()
        assert not wire.connected
        again = await wire.call("PING", timeout_s=5.0)
        wire.close()
        return failed, again

    failed, again = asyncio.run(scenario())

    assert failed == "the breaker opened"
    assert again == b"PONG"


def test_wire_fails_pending_calls_when_redis_dies(redis: RedisServer) -> None:
    async def scenario() -> str:
        wire = RedisWire(RedisAddress.from_url(redis.url))
        await wire.call("PING", timeout_s=5.0)
        calls = [wire.call("BLPOP", "never", 0, timeout_s=10.0) for _ in range(3)]
        pending = asyncio.gather(*calls, return_exceptions=True)
        with redis_sync.Redis.from_url(redis.url) as observer:
            deadline = asyncio.get_running_loop().time() + 5.0
            # One connection: the first BLPOP blocks it, the others queue.
            while observer.info("clients")["blocked_clients"] < 1:
                assert asyncio.get_running_loop().time() < deadline, "no BLPOP seen"
                await asyncio.sleep(0.01)
        redis.stop()
        outcomes = await pending
        assert all(isinstance(o, RedisFailure) for o in outcomes)
        return str(outcomes[0])

    reason = asyncio.run(scenario())

    assert reason.startswith("the connection to Redis was lost")


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listen queue is full: a connection attempt just waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_wire_gives_up_connecting_within_the_deadline(unanswered_port: int) -> None:
    async def call() -> None:
        wire = RedisWire(RedisAddress("127.0.0.1", unanswered_port))
        await wire.call("PING", timeout_s=0.05)

    with pytest.raises(RedisFailure) as caught:
        asyncio.run(call())

    assert str(caught.value) == (
        f"no connection to Redis at 127.0.0.1:{unanswered_port} within 50 ms"
    )


@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
def test_wire_deadline_does_not_blame_redis_for_a_busy_loop(
    redis: RedisServer, loop_kind: str
) -> None:
    """A reply that came in time counts, even if the loop was too busy to read it.

    Another connection's handler holds the loop for 50 ms while Redis
    answers a call whose deadline is 5 ms; when the loop comes back, the
    deadline is past but the reply is waiting in the socket.
    """

    class Busy(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            time.sleep(0.05)

    async def scenario() -> object:
        loop = asyncio.get_running_loop()
        wire = RedisWire(RedisAddress.from_url(redis.url))
        mine, theirs = socket.socketpair()
        try:
            await wire.call("PING", timeout_s=5.0)  # connected beforehand
            await loop.create_connection(Busy, sock=mine)
            call = asyncio.ensure_future(wire.call("PING", timeout_s=0.005))
            await asyncio.sleep(0)  # the command is on its way
            theirs.send(b"hold the loop")
            return await call
        finally:
            wire.close()
            theirs.close()

    runner = uvloop.run if loop_kind == "uvloop" else asyncio.run
    assert runner(scenario()) == b"PONG"
