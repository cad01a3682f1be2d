"""A lean Redis connection for the rate limiter: one socket, pipelined, hiredis.

The limiter sends one EVALSHA per request, and nothing else on the request
path. redis-py's asyncio client pays for a connection pool, a lock and a
Python-level parser around every call; here every call is one packed
command appended to a write buffer that is flushed once per event-loop turn
(so concurrent requests share one ``send``), and replies are parsed by
hiredis and handed, in order, to the futures that wait for them.
``load/benchmarks/redis_clients.py`` measures the difference.

A call that times out leaves its future in the queue: Redis still answers
it, in order, and that late answer is dropped. A deadline measures Redis,
not a gateway too busy to send or read on time (``_Deadline``:
``load/benchmarks/gateway_proxy.py --limits`` showed thousands of such false
timeouts per run at saturation). ``close`` fails every
pending call at once, which is what the limiter does when it stops trusting
a Redis that does not answer.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

from services.gateway.errors import ConfigError

Arg = bytes | str | int


class RedisFailure(Exception):
    """Redis could not be asked or did not answer; the message says which."""


class RedisReplyError(RedisFailure):
    """Redis answered with an error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """``redis://[user:password@]host[:port][/db]``, or ``rediss://`` for TLS."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ConfigError(
                f"REDIS_URL is {url!r}; use redis://host:port/db or rediss://..."
            )
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ConfigError(f"REDIS_URL {url!r} names database {path!r}; use 0-15")
        try:
            port = parts.port or 6379
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL {url!r} has a bad port: {exc}") from exc
        return cls(
            host=parts.hostname,
            port=port,
            db=int(path or 0),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "rediss",
        )

    def greeting(self) -> list[tuple[Arg, ...]]:
        """Commands a fresh connection sends before anything else."""
        commands: list[tuple[Arg, ...]] = []
        if self.password is not None:
            if self.username is not None:
                commands.append(("AUTH", self.username, self.password))
            else:
                commands.append(("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


class _Connection(asyncio.Protocol):
    """One RESP connection; replies resolve waiting futures in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.lost: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(f"Redis sent something that is not RESP: {exc}")
                return
            if reply is False:
                return
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"{type(exc).__name__}: {exc}" if exc else "closed by Redis"
        self._fail(f"the connection to Redis was lost ({reason})")

    def send(self, command: Sequence[Arg]) -> asyncio.Future[Any]:
        if self.lost is not None:
            raise RedisFailure(self.lost)
        waiter = self._loop.create_future()
        self._waiting.append(waiter)
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        # hiredis's stub types the argument as a 1-tuple; any length works.
        packed = hiredis.pack_command(tuple(command))  # type: ignore[arg-type]
        self._outgoing.append(packed)
        return waiter

    def close(self, reason: str) -> None:
        self._fail(reason)

    def _flush(self) -> None:
        if self._transport is not None and self.lost is None and self._outgoing:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _fail(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
        if self._transport is not None:
            self._transport.close()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(RedisFailure(reason))


class RedisWire:
    """Calls on one lazily (re)connected Redis connection, each with a deadline."""

    def __init__(self, address: RedisAddress) -> None:
        self.address = address
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.lost is None

    async def call(self, *command: Arg, timeout_s: float) -> Any:
        """Send one command; its reply, or RedisFailure within ``timeout_s``.

        An error reply is raised as RedisReplyError.
        """
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is None or connection.lost is not None:
            connection = await self._connect_within(loop, timeout_s)
        waiter = connection.send(command)
        deadline = _Deadline(loop, waiter, timeout_s)
        try:
            reply = await waiter
        finally:
            deadline.cancel()
        if isinstance(reply, hiredis.ReplyError):
            raise RedisReplyError(str(reply))
        return reply

    def close(self, reason: str = "closed by the gateway") -> None:
        """Drop the connection: pending calls fail now, the next call reconnects."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close(reason)

    async def _connect_within(
        self, loop: asyncio.AbstractEventLoop, timeout_s: float
    ) -> _Connection:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect(loop))
            # Callers that gave up on it must not leave its failure unretrieved.
            self._connecting.add_done_callback(_retrieve)
        waiter: asyncio.Future[_Connection] = loop.create_future()
        self._connecting.add_done_callback(partial(_pass_on, waiter))
        deadline = _Deadline(
            loop,
            waiter,
            timeout_s,
            f"no connection to Redis at {self.address.host}:{self.address.port} "
            f"within {timeout_s * 1000:g} ms",
        )
        try:
            return await waiter
        finally:
            deadline.cancel()

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        address = self.address
        context = ssl.create_default_context() if address.tls else None
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop), address.host, address.port, ssl=context
            )
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise RedisFailure(
                f"cannot connect to Redis at {address.host}:{address.port}: {reason}"
            ) from exc
        replies = [connection.send(command) for command in address.greeting()]
        for reply in await asyncio.gather(*replies):
            if isinstance(reply, hiredis.ReplyError):
                connection.close(f"Redis refused the greeting: {reply}")
                raise RedisReplyError(f"Redis refused the greeting: {reply}")
        self._connection = connection
        return connection


def _pass_on(waiter: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    """Hand ``done``'s outcome to ``waiter``, unless the waiter gave up."""
    if waiter.done():
        return
    if done.cancelled():
        waiter.cancel()
    elif done.exception() is not None:
        waiter.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        waiter.set_result(done.result())


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Deadline:
    """Fails a call that Redis has not answered within ``timeout_s``.

    The timeout is meant to measure Redis, not this process. A busy event
    loop runs a due timer late, and before it reads the sockets (libuv runs
    due timers first in a turn); a command may even have left late, flushed
    only after the loop came back. So a deadline that fires late by more
    than the timeout gives Redis one more ``timeout_s``, and any deadline
    declares the failure only two callbacks later, after one more poll of
    the socket. A Redis that is really gone is still given up on within
    about twice the timeout plus the loop's lag.
    """

    __slots__ = ("_failure", "_handle", "_late_once", "_loop", "_timeout_s", "_waiter")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        waiter: asyncio.Future[Any],
        timeout_s: float,
        failure: str | None = None,
    ) -> None:
        self._loop = loop
        self._failure = (
            failure or f"Redis did not answer within {timeout_s * 1000:g} ms"
        )
        self._waiter = waiter
        self._timeout_s = timeout_s
        self._late_once = False
        self._handle: asyncio.TimerHandle | None = loop.call_later(timeout_s, self._due)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _due(self) -> None:
        if self._waiter.done() or self._handle is None:
            return
        late_s = self._loop.time() - self._handle.when()
        if late_s > self._timeout_s and not self._late_once:
            self._late_once = True
            self._handle = self._loop.call_later(self._timeout_s, self._due)
            return
        self._handle = None
        self._loop.call_soon(self._loop.call_soon, self._expire)

    def _expire(self) -> None:
        if not self._waiter.done():
            self._waiter.set_exception(RedisFailure(self._failure))
