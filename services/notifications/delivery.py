"""The delivery state machine of one notification, kept in Postgres.

Every change is a compare-and-set on ``(status, attempts)``, so of several
workers holding the same queue message only one makes each attempt, and an
outcome is recorded only by the worker that made the attempt. Each change
adds a history entry in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.notifications.records import add_history

SETTLED = frozenset({"sent", "failed"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, transient failures are retried."""

    max_attempts: int
    backoff_s: float
    backoff_max_s: float

    def delay_s(self, failed_attempt: int) -> float:
        """The pause after the ``failed_attempt``-th attempt: doubling, capped."""
        return float(
            min(self.backoff_s * 2 ** (failed_attempt - 1), self.backoff_max_s)
        )


@dataclass(frozen=True)
class State:
    status: str
    attempts: int
    wait_s: float
    """Seconds until the next attempt is due; 0 when it is due now."""
    stale: bool
    """In ``sending`` for longer than a send can take: its worker is gone."""
    last_error: str | None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED


@dataclass(frozen=True)
class Attempt:
    """A claimed attempt: the worker holding it is the only one sending."""

    notification_id: uuid.UUID
    number: int
    to_email: str
    to_name: str
    subject: str
    body: str


async def state(
    pool: asyncpg.Pool, notification_id: uuid.UUID, lease_s: float
) -> State | None:
    row = await pool.fetchrow(
        """SELECT status, attempts, last_error,
                greatest(0, extract(epoch FROM next_attempt_at - clock_timestamp()))
                    AS wait_s,
                coalesce(
                    attempt_started_at < clock_timestamp() - make_interval(secs => $2),
                    false
                ) AS stale
            FROM notifications.notifications WHERE id = $1""",
        notification_id,
        lease_s,
    )
    if row is None:
        return None
    return State(
        status=row["status"],
        attempts=row["attempts"],
        wait_s=float(row["wait_s"] or 0),
        stale=row["status"] == "sending" and row["stale"],
        last_error=row["last_error"],
    )


async def claim(
    pool: asyncpg.Pool, notification_id: uuid.UUID, attempts: int
) -> Attempt | None:
    """Start attempt ``attempts + 1``; None when another worker got there first."""
    row = await pool.fetchrow(
        """UPDATE notifications.notifications SET
                status = 'sending',
                attempts = attempts + 1,
                attempt_started_at = clock_timestamp(),
                next_attempt_at = NULL
            WHERE id = $1 AND attempts = $2 AND status IN ('queued', 'retrying')
            RETURNING attempts, to_email, to_name, subject, body""",
        notification_id,
        attempts,
    )
    if row is None:
        return None
    return Attempt(
        notification_id,
        row["attempts"],
        row["to_email"],
        row["to_name"],
        row["subject"],
        row["body"],
    )


async def sent(pool: asyncpg.Pool, attempt: Attempt, detail: str) -> bool:
    """Record that the SMTP server accepted the message."""
    return await _finish(
        pool,
        attempt,
        "sent",
        detail,
        """UPDATE notifications.notifications SET
               status = 'sent', sent_at = clock_timestamp(),
               attempt_started_at = NULL, last_error = NULL
           WHERE id = $1 AND status = 'sending' AND attempts = $2
           RETURNING true""",
    )


async def retry(
    pool: asyncpg.Pool, attempt: Attempt, reason: str, delay_s: float
) -> bool:
    """Record a transient failure; the next attempt is due in ``delay_s``."""
    return await _finish(
        pool,
        attempt,
        "retrying",
        f"{reason}; attempt {attempt.number + 1} in {delay_s:g}s",
        """UPDATE notifications.notifications SET
               status = 'retrying', attempt_started_at = NULL, last_error = $3,
               next_attempt_at = clock_timestamp() + make_interval(secs => $4)
           WHERE id = $1 AND status = 'sending' AND attempts = $2
           RETURNING true""",
        reason,
        delay_s,
    )


async def fail(pool: asyncpg.Pool, attempt: Attempt, reason: str) -> bool:
    """Record that the notification will not be sent, and why."""
    return await _finish(
        pool,
        attempt,
        "failed",
        reason,
        """UPDATE notifications.notifications SET
               status = 'failed', attempt_started_at = NULL, last_error = $3,
               failed_reason = $3
           WHERE id = $1 AND status = 'sending' AND attempts = $2
           RETURNING true""",
        reason,
    )


async def abandon(
    pool: asyncpg.Pool, notification_id: uuid.UUID, state: State, reason: str
) -> bool:
    """Fail a notification without an attempt in hand: its sender vanished
    mid-send, or it has used up its attempts."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            """UPDATE notifications.notifications SET
                   status = 'failed', failed_reason = $4, attempt_started_at = NULL,
                   next_attempt_at = NULL
               WHERE id = $1 AND status = $2 AND attempts = $3
               RETURNING true""",
            notification_id,
            state.status,
            state.attempts,
            reason,
        )
        if done:
            await add_history(conn, notification_id, "failed", state.attempts, reason)
    return bool(done)


async def _finish(
    pool: asyncpg.Pool,
    attempt: Attempt,
    status: str,
    detail: str,
    update: str,
    *arguments: object,
) -> bool:
    """Run ``update`` (parameters: id, attempt number, ``arguments``) and add the
    history entry; False when the attempt was no longer in progress."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            update, attempt.notification_id, attempt.number, *arguments
        )
        if done:
            await add_history(
                conn, attempt.notification_id, status, attempt.number, detail
            )
    return bool(done)
