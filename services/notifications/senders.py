"""The workers that send queued notifications.

Every replica runs one ``Sender``: a member of the ``senders`` consumer group
of the queue stream. A queue message names a notification; the sender keeps
it pending while it makes the attempts (with backoff between transient
failures) and acknowledges it once the notification is ``sent`` or
``failed``. A sender that dies leaves its messages pending; another takes
them over after ``reclaim_idle_ms`` and goes on from the recorded attempt
count. Which worker makes an attempt is decided in Postgres
(``delivery.claim``), so a message delivered twice, or taken over from a
worker that was only slow, never sends a notification twice.

Senders also keep the stream short: about twice per ``reclaim_idle_ms`` each
drops the messages that every group on the stream has acknowledged (``trim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from services.common.events import Event
from services.notifications import delivery
from services.notifications.delivery import Attempt, RetryPolicy, State
from services.notifications.errors import (
    PermanentFailure,
    TransientFailure,
    UncertainDelivery,
)
from services.notifications.mailer import Mailer

logger = logging.getLogger(__name__)

GROUP = "senders"
# A send can take the SMTP timeout; recording its outcome a little longer.
LEASE_MARGIN_S = 30.0
INFRASTRUCTURE_ERRORS = (
    RedisError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

# Below the oldest message any group still needs (its oldest pending one, else
# the last it read), every message is acknowledged by every group: those go.
# One script, so that no group reads, claims or is created between the look
# and the cut. "~" cuts whole stream nodes only, which is cheap and never
# reaches past the floor; a stream without a group keeps everything.
TRIM_ACKNOWLEDGED = """
-- Stream ids are two 64-bit numbers: compared as digit strings, exactly.
local function less(x, y)
  if #x ~= #y then
    return #x < #y
  end
  return x < y
end

local function before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  if a_ms ~= b_ms then
    return less(a_ms, b_ms)
  end
  return less(a_seq, b_seq)
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local floor = nil
for _, fields in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local group = {}
  for i = 1, #fields, 2 do
    group[fields[i]] = fields[i + 1]
  end
  local oldest = group['last-delivered-id']
  if group['pending'] > 0 then
    oldest = redis.call('XPENDING', KEYS[1], group['name'])[2]
  end
  if floor == nil or before(oldest, floor) then
    floor = oldest
  end
end
if floor == nil then
  return 0
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', floor)
"""


class Sender:
    """Reads the queue stream as one member of the ``senders`` group and sends."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        mailer: Mailer,
        policy: RetryPolicy,
        *,
        stream: str,
        consumer: str | None = None,
        block_ms: int = 500,
        reclaim_idle_ms: int = 30_000,
        concurrency: int = 16,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.mailer = mailer
        self.policy = policy
        self.stream = stream
        # Unique even for two senders in one process, each a consumer of its own.
        self.consumer = consumer or (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.block_ms = block_ms
        self.reclaim_idle_ms = reclaim_idle_ms
        self.concurrency = concurrency
        self.lease_s = mailer.timeout_s + LEASE_MARGIN_S
        self._heartbeat_s = reclaim_idle_ms / 1000 / 3
        self._stopping = asyncio.Event()
        self._next_reclaim = 0.0
        self._deliveries: dict[str, asyncio.Task[None]] = {}
        self._trim = redis.register_script(TRIM_ACKNOWLEDGED)

    async def ensure_group(self) -> None:
        """Create the group at the stream's start, so no queued message is missed."""
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def poll_once(self) -> int:
        """Take over stale messages, then read new ones; returns how many
        deliveries it started. Waits for a free slot when all are busy."""
        free = self.concurrency - len(self._deliveries)
        if free <= 0:
            await asyncio.wait(
                list(self._deliveries.values()),
                timeout=self.block_ms / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
            return 0
        started = 0
        now = asyncio.get_running_loop().time()
        if now >= self._next_reclaim:
            # Looked for about twice per idle period: that costs Redis little.
            self._next_reclaim = now + self.reclaim_idle_ms / 1000 / 2
            await self.trim()
            reclaimed = await self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, self.reclaim_idle_ms, "0-0",
                count=free,
            )  # fmt: skip
            started = self._start(reclaimed[1])
            free -= started
            if free <= 0:
                return started
        reply = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=free, block=self.block_ms
        )
        return started + self._start(_messages(reply))

    async def trim(self) -> int:
        """Drop the messages of the stream that every group has acknowledged, as
        far as whole stream nodes allow; returns how many went. A message still
        pending or unread in any group stays."""
        try:
            removed = await self._trim(keys=[self.stream])
        except ResponseError as exc:
            logger.warning(
                "sender %s cannot trim %s: %s", self.consumer, self.stream, exc
            )
            return 0
        if removed:
            logger.debug(
                "trimmed %d acknowledged message(s) from %s", removed, self.stream
            )
        return int(removed)

    def stop(self) -> None:
        """Ask ``run`` to return: deliveries waiting to retry return at once, one
        in the middle of a send records its outcome first."""
        self._stopping.set()

    async def run(self) -> None:
        """Send until ``stop``; waits out Redis outages, recreates the group."""
        logger.info("sender %s of %s started", self.consumer, self.stream)
        try:
            await self._poll_until_stopped()
            if self._deliveries:
                await asyncio.wait(list(self._deliveries.values()))
        finally:
            # Cancelled: the deliveries in hand end too, their messages pending.
            for task in list(self._deliveries.values()):
                task.cancel()
        logger.info("sender %s of %s stopped", self.consumer, self.stream)

    async def _poll_until_stopped(self) -> None:
        delay_s = 0.1
        while not self._stopping.is_set():
            try:
                await self.ensure_group()
                pending = await self.redis.xreadgroup(
                    GROUP, self.consumer, {self.stream: "0"}, count=self.concurrency
                )
                self._start(_messages(pending))
                while not self._stopping.is_set():
                    await self.poll_once()
                    delay_s = 0.1
            except (RedisError, OSError) as exc:
                logger.warning(
                    "sender %s: %s; retrying in %.1fs", self.consumer, exc, delay_s
                )
                await self._pause(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    def _start(self, messages: Iterable[tuple[str, Mapping[str, str] | None]]) -> int:
        started = 0
        for message_id, fields in messages:
            if fields is None or message_id in self._deliveries:
                continue  # trimmed meanwhile, or in hand already
            task = asyncio.create_task(self.deliver(message_id, fields))
            self._deliveries[message_id] = task
            task.add_done_callback(self._forget)
            started += 1
        return started

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._deliveries = {m: t for m, t in self._deliveries.items() if t is not task}

    async def deliver(self, message_id: str, fields: Mapping[str, str]) -> None:
        """See one queue message through; acknowledge it once its notification
        is settled. Left pending when that cannot be done now."""
        try:
            notification_id = uuid.UUID(
                Event.from_fields(fields).payload["notification_id"]
            )
        except (KeyError, TypeError, ValueError):
            logger.error(
                "queue message %s of %s names no notification; dropped: %r",
                message_id, self.stream, dict(fields),
            )  # fmt: skip
            await self._ack(message_id)
            return
        try:
            settled = await self._see_through(notification_id, message_id)
        except INFRASTRUCTURE_ERRORS as exc:
            logger.warning(
                "delivery of notification %s interrupted: %r; left pending",
                notification_id, exc,
            )  # fmt: skip
            return
        except Exception:
            logger.exception(
                "delivery of notification %s failed unexpectedly; left pending",
                notification_id,
            )
            return
        if settled:
            await self._ack(message_id)

    async def _see_through(self, notification_id: uuid.UUID, message_id: str) -> bool:
        """Make the attempts still due; True once the notification is settled."""
        while True:
            state = await delivery.state(self.pool, notification_id, self.lease_s)
            if state is None:
                logger.error(
                    "queue message %s names notification %s, which does not exist",
                    message_id, notification_id,
                )  # fmt: skip
                return True
            if state.settled:
                return True
            if state.status == "sending":
                if not state.stale:
                    logger.debug(
                        "notification %s is in another worker's hands", notification_id
                    )
                    return False
                await self._abandon_vanished(notification_id, state)
            elif state.attempts >= self.policy.max_attempts:
                reason = (
                    f"gave up after {state.attempts} attempts; the last failed: "
                    f"{state.last_error}"
                )
                await delivery.abandon(self.pool, notification_id, state, reason)
            elif state.wait_s > 0:
                if not await self._wait(state.wait_s, message_id):
                    return False
            else:
                if self._stopping.is_set():
                    return False
                await self._heartbeat(message_id)
                attempt = await delivery.claim(
                    self.pool, notification_id, state.attempts
                )
                if attempt is not None:
                    await self._attempt(attempt)

    async def _attempt(self, attempt: Attempt) -> None:
        number, limit = attempt.number, self.policy.max_attempts
        try:
            reply = await self.mailer.send(attempt)
        except TransientFailure as exc:
            if number >= limit:
                reason = f"gave up after {number} attempts; the last failed: {exc}"
                await delivery.fail(self.pool, attempt, reason)
                logger.warning(
                    "notification %s failed: %s", attempt.notification_id, reason
                )
            else:
                delay_s = self.policy.delay_s(number)
                await delivery.retry(self.pool, attempt, str(exc), delay_s)
                logger.info(
                    "notification %s: attempt %d of %d failed: %s; next in %gs",
                    attempt.notification_id, number, limit, exc, delay_s,
                )  # fmt: skip
            return
        except (PermanentFailure, UncertainDelivery) as exc:
            await delivery.fail(self.pool, attempt, str(exc))
            logger.warning("notification %s failed: %s", attempt.notification_id, exc)
            return
        detail = f"accepted by the SMTP server at {self.mailer.server}: {reply}"
        if not await delivery.sent(self.pool, attempt, detail):
            logger.warning(
                "notification %s was sent, but had been given up meanwhile",
                attempt.notification_id,
            )
            return
        logger.info(
            "notification %s sent to the SMTP server (attempt %d)",
            attempt.notification_id, number,
        )  # fmt: skip

    async def _abandon_vanished(self, notification_id: uuid.UUID, state: State) -> None:
        # At most once: the message may or may not have reached the server.
        reason = (
            f"the worker making attempt {state.attempts} stopped before recording "
            "its outcome; not sent again, as the email may have been delivered"
        )
        if await delivery.abandon(self.pool, notification_id, state, reason):
            logger.error("notification %s failed: %s", notification_id, reason)

    async def _wait(self, wait_s: float, message_id: str) -> bool:
        """Wait ``wait_s`` keeping the message ours; False when stopped meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (remaining_s := deadline - loop.time()) > 0:
            await self._heartbeat(message_id)
            if await self._pause(min(remaining_s, self._heartbeat_s)):
                return False
        return True

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped; True when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _heartbeat(self, message_id: str) -> None:
        # Claiming the message afresh resets its idle time, so that no other
        # sender takes over a delivery that is merely waiting to retry.
        await self.redis.xclaim(
            self.stream, GROUP, self.consumer, 0, [message_id], justid=True
        )

    async def _ack(self, message_id: str) -> None:
        try:
            await self.redis.xack(self.stream, GROUP, message_id)
        except (RedisError, OSError) as exc:
            logger.warning("cannot acknowledge queue message %s: %s", message_id, exc)


def _messages(reply: Any) -> list[tuple[str, Mapping[str, str] | None]]:
    """The (id, fields) pairs of an XREADGROUP reply on one stream."""
    return [message for _, messages in reply or [] for message in messages]
