"""Reliable events between services.

A service records each domain event in its own ``outbox`` table, in the same
transaction as the state change (``record``). A relay moves unpublished rows
to one Redis stream (``OutboxRelay``). Every interested service reads that
stream through its own consumer group (``EventConsumer``): it handles an event
and records its id in ``processed_events`` in one transaction, then
acknowledges it. So an event is never lost (the outbox row stays until Redis
has it; an unacknowledged message is redelivered or reclaimed from a dead
consumer) and never applied twice (a redelivered id is skipped).

A row may name another stream (``record(..., stream=...)``): a service queues
work for its own workers that way, as reliably as it publishes events.

Redis must keep its data across restarts (append-only file) for the
never-lost half to hold once an event has left the outbox. With
``appendfsync everysec``, as the stack runs it, Redis writes to that file
before it answers, so a crash of the Redis process loses nothing it
acknowledged (save when a slow disk is still busy with the last fsync: writes
then wait up to two seconds), but a crash of its host (a power cut, a kernel
panic) may lose the last second or two. The Redis client must be created
with ``decode_responses=True`` and a socket timeout
(``services.common.redis_client.connect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from services.common.redis_client import block_within_timeout

logger = logging.getLogger(__name__)

STREAM = "campus:events"
DEAD_LETTERS = "campus:events:dead"


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    source: str
    payload: Mapping[str, Any]
    occurred_at: str

    def to_fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "payload": json.dumps(self.payload),
            "occurred_at": self.occurred_at,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Event:
        return cls(
            id=fields["id"],
            type=fields["type"],
            source=fields["source"],
            payload=json.loads(fields["payload"]),
            occurred_at=fields["occurred_at"],
        )


Handler = Callable[[asyncpg.Connection, Event], Awaitable[None]]


def schema_ddl(schema: str) -> list[str]:
    """The statements that create a service's outbox and processed-event tables."""
    schema = _checked_schema(schema)
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.outbox (
            seq bigserial PRIMARY KEY,
            id uuid NOT NULL UNIQUE,
            type text NOT NULL,
            payload jsonb NOT NULL,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        )""",
        # Added after the table: running these statements again upgrades an
        # outbox made without it. NULL means the relay's own stream.
        f"ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS stream text",
        f"""CREATE INDEX IF NOT EXISTS outbox_unpublished
            ON {schema}.outbox (seq) WHERE published_at IS NULL""",
        f"""CREATE TABLE IF NOT EXISTS {schema}.processed_events (
            consumer_group text NOT NULL,
            event_id uuid NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, event_id)
        )""",
    ]


async def record(
    conn: asyncpg.Connection,
    schema: str,
    type_: str,
    payload: Mapping[str, Any],
    *,
    stream: str | None = None,
) -> str:
    """Add an event to the outbox inside the caller's transaction; returns its id.

    The relay publishes it to ``stream``, or to its own stream when None.
    """
    event_id = str(uuid.uuid4())
    await conn.execute(
        f"INSERT INTO {_checked_schema(schema)}.outbox (id, type, payload, stream) "
        "VALUES ($1, $2, $3::jsonb, $4)",
        event_id,
        type_,
        json.dumps(payload),
        stream,
    )
    # Wakes the relay at commit; without a listener it costs nothing.
    await conn.execute("SELECT pg_notify($1, '')", _channel(schema))
    return event_id


class OutboxRelay:
    """Publishes a schema's unpublished outbox rows to the stream, oldest first.

    A row that names a stream of its own (``record(..., stream=...)``) goes there.

    Rows are locked with SKIP LOCKED, so several relays (one per replica) can
    run side by side. A relay that dies after XADD but before its commit makes
    the batch go out twice; consumers skip the second copy.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        schema: str,
        *,
        stream: str = STREAM,
        batch: int = 100,
        poll_s: float = 1.0,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.schema = _checked_schema(schema)
        self.stream = stream
        self.batch = batch
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._stopping = False

    async def relay_once(self) -> int:
        """Publish one batch; returns how many events went out."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT id, type, payload, occurred_at, stream
                    FROM {self.schema}.outbox
                    WHERE published_at IS NULL ORDER BY seq
                    LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch,
            )
            if not rows:
                return 0
            async with self.redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    fields: dict[Any, Any] = _row_event(row, self.schema).to_fields()
                    pipe.xadd(row["stream"] or self.stream, fields)
                await pipe.execute()
            await conn.execute(
                f"UPDATE {self.schema}.outbox SET published_at = now() "
                "WHERE id = ANY($1::uuid[])",
                [row["id"] for row in rows],
            )
        logger.debug("relayed %d event(s) from %s.outbox", len(rows), self.schema)
        return len(rows)

    def stop(self) -> None:
        """Ask ``run`` to return after the batch in hand."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Relay until ``stop``; survives Postgres and Redis outages."""
        logger.info("outbox relay for %s started", self.schema)
        listener = await self._listen()
        try:
            while not self._stopping:
                # Cleared before relaying: a commit during the batch wakes the next.
                self._wake.clear()
                try:
                    while await self.relay_once() == self.batch:
                        pass
                except (RedisError, OSError, asyncpg.PostgresError) as exc:
                    logger.warning(
                        "outbox relay for %s: %s; retrying", self.schema, exc
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
        finally:
            if listener is not None:
                await listener.remove_listener(_channel(self.schema), self._on_notify)
                await self.pool.release(listener)
        logger.info("outbox relay for %s stopped", self.schema)

    async def _listen(self) -> asyncpg.Connection | None:
        """Hold one pooled connection that LISTENs, so commits wake the relay."""
        try:
            conn: asyncpg.Connection = await self.pool.acquire()
            await conn.add_listener(_channel(self.schema), self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("outbox relay for %s polls only: %s", self.schema, exc)
            return None
        return conn

    def _on_notify(self, *args: object) -> None:
        self._wake.set()


class EventConsumer:
    """Reads the stream as one member of a consumer group and applies handlers.

    Each handled event id is recorded in the same transaction as the handler's
    writes, so a redelivered event changes nothing. Events of types without a
    handler are acknowledged and ignored. Messages left pending by a consumer
    that died are reclaimed after ``reclaim_idle_ms``; one that failed
    ``max_deliveries`` times goes to the dead-letter stream.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        schema: str,
        group: str,
        handlers: Mapping[str, Handler],
        *,
        consumer: str | None = None,
        stream: str = STREAM,
        block_ms: int = 500,
        reclaim_idle_ms: int = 10_000,
        max_deliveries: int = 5,
    ) -> None:
        block_within_timeout(redis, block_ms, f"consumer group {group}")
        self.pool = pool
        self.redis = redis
        self.schema = _checked_schema(schema)
        self.group = group
        self.handlers = dict(handlers)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.stream = stream
        self.block_ms = block_ms
        self.reclaim_idle_ms = reclaim_idle_ms
        self.max_deliveries = max_deliveries
        self._stopping = False

    async def ensure_group(self) -> None:
        """Create the group at the stream's start, so no earlier event is missed."""
        try:
            await self.redis.xgroup_create(
                self.stream, self.group, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def consume_once(self) -> int:
        """Reclaim stale messages, then read new ones; returns how many were handled."""
        handled = await self._reclaim()
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=50, block=self.block_ms
        )
        for message_id, fields in _messages(reply):
            handled += await self._handle(message_id, fields)
        return handled

    def stop(self) -> None:
        """Ask ``run`` to return; it does within ``block_ms``."""
        self._stopping = True

    async def run(self) -> None:
        """Consume until ``stop``; waits out Redis outages, recreates the group."""
        logger.info("consumer %s of group %s started", self.consumer, self.group)
        delay_s = 0.1
        while not self._stopping:
            try:
                await self.ensure_group()
                await self._handle_own_pending()
                while not self._stopping:
                    await self.consume_once()
                    delay_s = 0.1
            except (RedisError, OSError) as exc:
                logger.warning(
                    "consumer %s: %s; retrying in %.1fs", self.group, exc, delay_s
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)
        logger.info("consumer %s of group %s stopped", self.consumer, self.group)

    async def _handle_own_pending(self) -> None:
        """After a restart, first finish what this consumer read but did not ack."""
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: "0"}, count=100
        )
        for message_id, fields in _messages(reply):
            await self._handle(message_id, fields)

    async def _reclaim(self) -> int:
        reply = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            self.reclaim_idle_ms,
            "0-0",
            count=50,
        )
        handled = 0
        for message_id, fields in reply[1]:
            if fields is None:
                continue  # trimmed from the stream meanwhile
            if await self._deliveries(message_id) > self.max_deliveries:
                await self._bury(message_id, fields)
                continue
            handled += await self._handle(message_id, fields)
        return handled

    async def _handle(self, message_id: Any, fields: Mapping[str, str]) -> int:
        event = Event.from_fields(fields)
        handler = self.handlers.get(event.type)
        if handler is not None:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    first = await conn.fetchval(
                        f"""INSERT INTO {self.schema}.processed_events
                            (consumer_group, event_id) VALUES ($1, $2)
                            ON CONFLICT DO NOTHING RETURNING true""",
                        self.group,
                        event.id,
                    )
                    if first:
                        await handler(conn, event)
            except Exception:
                # Left pending: redelivered after reclaim_idle_ms, buried after
                # max_deliveries.
                logger.exception(
                    "group %s failed on event %s (%s)", self.group, event.id, event.type
                )
                return 0
            logger.debug(
                "group %s %s event %s (%s)",
                self.group, "handled" if first else "skipped repeated", event.id,
                event.type,
            )  # fmt: skip
        await self.redis.xack(self.stream, self.group, message_id)
        return 1 if handler is not None else 0

    async def _deliveries(self, message_id: Any) -> int:
        pending = await self.redis.xpending_range(
            self.stream, self.group, min=message_id, max=message_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 0

    async def _bury(self, message_id: Any, fields: Mapping[str, str]) -> None:
        logger.error(
            "group %s gives up on message %s after %d deliveries; moved to %s",
            self.group, message_id, self.max_deliveries, DEAD_LETTERS,
        )  # fmt: skip
        buried: dict[Any, Any] = {**fields, "group": self.group}
        await self.redis.xadd(DEAD_LETTERS, buried)
        await self.redis.xack(self.stream, self.group, message_id)


class EventWorkers:
    """A service's relay and consumer, run as background tasks of its process.

    Every replica runs both: relays share the outbox through SKIP LOCKED, and
    consumers share the stream as members of the service's consumer group.
    ``stream`` is the one they publish to and read (a test may pass its own).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        schema: str,
        handlers: Mapping[str, Handler] | None = None,
        *,
        stream: str = STREAM,
        reclaim_idle_ms: int = 10_000,
    ) -> None:
        self.relay = OutboxRelay(pool, redis, schema, stream=stream)
        self.consumer: EventConsumer | None = None
        if handlers:
            self.consumer = EventConsumer(
                pool, redis, schema, schema, handlers,
                stream=stream, reclaim_idle_ms=reclaim_idle_ms,
            )  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.relay.run()))
        if self.consumer is not None:
            self._tasks.append(asyncio.create_task(self.consumer.run()))

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Let the loops finish what they hold (cancelling a query or a blocking
        read would leave its connection broken), then cancel what lingers."""
        self.relay.stop()
        if self.consumer is not None:
            self.consumer.stop()
        if self._tasks:
            _, lingering = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in lingering:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def _row_event(row: asyncpg.Record, source: str) -> Event:
    occurred: datetime = row["occurred_at"]
    return Event(
        id=str(row["id"]),
        type=row["type"],
        source=source,
        payload=json.loads(row["payload"]),
        occurred_at=occurred.astimezone(UTC).isoformat(),
    )


def _messages(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The (id, fields) pairs of an XREADGROUP reply on one stream."""
    return [message for _, messages in reply or [] for message in messages]


def _checked_schema(schema: str) -> str:
    # Schema names go into SQL text: only plain identifiers are accepted.
    if not schema.isidentifier():
        raise ValueError(f"schema name {schema!r} is not a plain identifier")
    return schema


def _channel(schema: str) -> str:
    return f"{schema}_outbox"
