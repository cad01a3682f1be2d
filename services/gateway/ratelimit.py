"""Rate limiting: one atomic decision in Redis per request, and what to do without it.

A request's policies (``policies.py``) are decided together by one EVALSHA
of the sliding-window-log script (``sliding_log.py``): every policy admits
and is charged, or none is charged and the request gets 429 naming the
policy whose budget comes back last. The script is loaded once per
connection; a Redis that forgot it (restart, SCRIPT FLUSH) answers NOSCRIPT
and is sent the script itself, which loads it again.

When Redis does not answer within GATEWAY_REDIS_TIMEOUT_MS, or the circuit
breaker has stopped asking it after GATEWAY_BREAKER_FAILURES failures in a
row, each route does what its ``limits_fail`` says: ``open`` decides with a
log kept in this process (each policy's limit divided by GATEWAY_PROCESSES,
the number of gateway processes that would otherwise share it), ``closed``
answers 503. Either way it is counted (``registry``) and logged as a
WARNING at most once a second. After GATEWAY_BREAKER_COOLDOWN_S one request
probes Redis again; when it answers, limiting is shared again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.gateway.breaker import OPEN, CircuitBreaker
from services.gateway.errors import TooManyRequests, Unavailable
from services.gateway.metrics import Registry, ThrottledWarning
from services.gateway.policies import Policy, RouteLimits
from services.gateway.redis_wire import RedisFailure, RedisReplyError, RedisWire
from services.gateway.sliding_log import SCRIPT, SCRIPT_SHA, LocalLog

logger = logging.getLogger(__name__)

KEY_PREFIX = "rl:"
_SUBJECTS = {"ip": "client address", "user": "user"}


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, in every way a policy may key it."""

    ip: str
    user: str | None = None
    fields: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    source: str  # "redis" or "local"
    header: bytes  # the RateLimit field value
    violated: Policy | None = None
    retry_after_s: int = 0
    # Failure budgets charged by this request, given back unless it fails.
    reserved: tuple[str, ...] = ()
    stamp: int = 0


@dataclass(frozen=True)
class LimiterSettings:
    timeout_s: float = 0.005
    breaker_failures: int = 5
    breaker_cooldown_s: float = 2.0
    processes: int = 1
    key_secret: bytes = b""


class RateLimiter:
    """Decides requests against their route's policies; see the module doc."""

    def __init__(
        self,
        wire: RedisWire | None,
        settings: LimiterSettings,
        registry: Registry,
        *,
        local: LocalLog | None = None,
    ) -> None:
        self.wire = wire
        self.settings = settings
        self.registry = registry
        self.local = local or LocalLog()
        self.breaker = CircuitBreaker(
            "redis (rate limits)",
            failures=settings.breaker_failures,
            cooldown_s=settings.breaker_cooldown_s,
            on_change=self._breaker_changed,
        )
        self._fallbacks = ThrottledWarning(logger, "rate limits decided without Redis")
        self._decided = {
            (source, outcome): registry.counter(
                "gateway_ratelimit_decisions_total",
                "rate-limit decisions by where they were made and their outcome",
                source=source,
                outcome=outcome,
            )
            for source in ("redis", "local")
            for outcome in ("allowed", "rejected")
        }
        self._failed_closed = registry.counter(
            "gateway_ratelimit_failed_closed_total",
            "requests answered 503 because Redis could not decide and the route "
            "fails closed",
        )
        self._last_error = "nothing yet"
        self._redis_failures = registry.counter(
            "gateway_ratelimit_redis_failures_total",
            "Redis calls of the rate limiter that failed or timed out",
        )

    async def start(self) -> None:
        """Load the script, so that the first requests need not send it."""
        if self.wire is None:
            return
        try:
            await self.wire.call("SCRIPT", "LOAD", SCRIPT, timeout_s=1.0)
        except RedisFailure as exc:
            logger.warning("could not load the rate-limit script yet: %s", exc)

    def caller_fields(self, body: bytes, names: Sequence[str]) -> dict[str, str]:
        """The body fields that key policies, normalised and hashed."""
        try:
            document = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(document, dict):
            return {}
        fields: dict[str, str] = {}
        for name in names:
            value = document.get(name)
            if isinstance(value, str) and value.strip():
                digest = hashlib.blake2b(
                    value.strip().casefold().encode(),
                    key=self.settings.key_secret[:64],
                    digest_size=16,
                    person=b"campus-ratelimit",
                )
                fields[name] = digest.hexdigest()
        return fields

    async def decide(self, limits: RouteLimits, caller: Caller) -> Decision | None:
        """The decision for one request; None when no policy applies to it.

        Raises Unavailable (503) when Redis cannot decide and the route
        fails closed.
        """
        chosen = _keyed(limits.policies, caller)
        if not chosen:
            return None
        keys = [key for _, key in chosen]
        args = [n for policy, _ in chosen for n in (policy.limit, policy.window_us)]
        reply: list[int] | None = None
        if self.wire is None:
            reason = "no Redis is configured"
        elif not self.breaker.allow():
            reason = f"the circuit breaker is open (Redis failed {self._last_error})"
        else:
            try:
                reply = await self._evaluate(self.wire, keys, args)
            except RedisFailure as exc:
                self._redis_failures.inc()
                self._last_error = str(exc)
                self.breaker.failed()
                reason = str(exc)
            else:
                self.breaker.succeeded()
        if reply is not None:
            return self._decision(chosen, reply, "redis")
        if limits.fail == "closed":
            self._failed_closed.inc()
            self._fallbacks.note(f"answered 503 (route fails closed): {reason}")
            retry_s = max(1, math.ceil(self.breaker.retry_after_s()))
            raise Unavailable(
                "rate limits cannot be checked right now and this route does not "
                f"run without them; retry in {retry_s}s",
                headers=(("retry-after", str(retry_s)),),
            )
        self._fallbacks.note(f"decided in this process: {reason}")
        share = self.settings.processes
        local_args = [
            n
            for policy, _ in chosen
            for n in (max(1, policy.limit // share), policy.window_us)
        ]
        return self._decision(chosen, self.local.decide(keys, local_args), "local")

    async def settle(self, decision: Decision, status: int) -> None:
        """Give back the failure budgets a request held, unless it failed (401)."""
        if not decision.reserved or status == 401:
            return
        if decision.source == "local":
            self.local.refund(decision.reserved, decision.stamp)
            return
        if self.wire is None:
            return
        calls = [
            self.wire.call(
                "LREM", key, -1, decision.stamp, timeout_s=self.settings.timeout_s
            )
            for key in decision.reserved
        ]
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, RedisFailure):
                # The place stays taken until it leaves the window: safe side.
                logger.warning("could not give back a failure budget: %s", outcome)

    async def _evaluate(
        self, wire: RedisWire, keys: list[str], args: list[int]
    ) -> list[int]:
        timeout_s = self.settings.timeout_s
        try:
            reply = await wire.call(
                "EVALSHA", SCRIPT_SHA, len(keys), *keys, *args, timeout_s=timeout_s
            )
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            logger.info("Redis does not know the rate-limit script; sending it")
            reply = await wire.call(
                "EVAL", SCRIPT, len(keys), *keys, *args, timeout_s=timeout_s
            )
        if not isinstance(reply, list) or len(reply) != 3 + 2 * len(keys):
            raise RedisFailure(f"the rate-limit script answered {reply!r}")
        return reply

    def _decision(
        self, chosen: list[tuple[Policy, str]], reply: list[int], source: str
    ) -> Decision:
        blocked, wait_us, stamp = reply[0], reply[1], reply[2]
        parts = []
        for index, (policy, _) in enumerate(chosen):
            if policy.counts == "requests":
                remaining, reset_us = reply[3 + 2 * index], reply[4 + 2 * index]
                reset_s = max(1, math.ceil(reset_us / 1_000_000))
                parts.append(f'"{policy.name}";r={remaining};t={reset_s}')
        header = ", ".join(parts).encode()
        self._decided[source, "rejected" if blocked else "allowed"].inc()
        if blocked:
            return Decision(
                False,
                source,
                header,
                violated=chosen[blocked - 1][0],
                retry_after_s=max(1, math.ceil(wait_us / 1_000_000)),
            )
        reserved = tuple(key for policy, key in chosen if policy.counts == "failures")
        return Decision(True, source, header, reserved=reserved, stamp=stamp)

    def _breaker_changed(self, state: str) -> None:
        self.registry.counter(
            "gateway_ratelimit_breaker_transitions_total",
            "changes of state of the circuit breaker in front of Redis",
            to=state,
        ).inc()
        if state == OPEN and self.wire is not None:
            self.wire.close("the circuit breaker opened")
        elif state == "closed":
            self._fallbacks.flush("Redis answers again; limits are shared again")


def _keyed(policies: Sequence[Policy], caller: Caller) -> list[tuple[Policy, str]]:
    chosen: list[tuple[Policy, str]] = []
    for policy in policies:
        subject: str | None
        if policy.key == "ip" or (policy.key == "caller" and caller.user is None):
            subject = caller.ip
        elif policy.key in ("user", "caller"):
            subject = f"user:{caller.user}" if caller.user is not None else None
        else:
            value = (caller.fields or {}).get(policy.body_field or "")
            subject = f"{policy.body_field}:{value}" if value else None
        if subject is not None:
            chosen.append((policy, f"{KEY_PREFIX}{policy.name}:{subject}"))
    return chosen


def rejection(decision: Decision, *, authenticated: bool) -> TooManyRequests:
    """The 429 for a refused decision: Retry-After, and the policy by name."""
    policy = decision.violated
    if policy is None:
        raise ValueError("an admitted decision is not a rejection")
    key = policy.key
    if key == "caller":
        key = "user" if authenticated else "ip"
    subject = _SUBJECTS.get(key) or policy.body_field or key
    return TooManyRequests(
        f"rate limit {policy.name!r} ({policy.describe()} for this {subject}) is "
        f"used up; retry in {decision.retry_after_s}s",
        headers=(("retry-after", str(decision.retry_after_s)),),
        extra={"policy": policy.name, "retry_after_s": decision.retry_after_s},
    )
