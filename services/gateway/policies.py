"""Rate-limit policies, as the route table names them and routes use them.

A policy is a budget: at most ``limit`` requests in any ``window_s`` seconds,
for one caller. Policies are declared once, at the top of the route table,
and named by routes (or by an API version, for all its routes)::

    policies = [
        { name = "user-burst", limit = 20, window_s = 1 },
        { name = "user-sustained", limit = 600, window_s = 60 },
        { name = "login-failures-account", limit = 5, window_s = 900,
          counts = "failures", key = "body.email" },
    ]

    [versions.v1]
    limits = ["user-burst", "user-sustained"]   # every v1 route, unless it says
    limits_fail = "open"                        # open | closed, when Redis fails

A caller has one budget per policy, shared by every route that names it.
Who the caller is depends on ``key``: ``caller`` (the default) is the user
on authenticated routes and the client address on public ones; ``ip`` and
``user`` say so explicitly; ``body.<field>`` is a string field of the JSON
request body (normalised and hashed, never kept in clear). A policy with
``counts = "failures"`` is charged only by answers 401: it holds a place
while the request is in flight and gives it back unless the answer is 401.

GATEWAY_POLICIES changes limits without editing the table, e.g.
``user-burst=50/1,auth-sustained=3000/60`` (limit/window_s).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.gateway.errors import ConfigError

KEYS = ("caller", "ip", "user")
BODY_KEY_PREFIX = "body."
COUNTS = ("requests", "failures")
FAIL_MODES = ("open", "closed")
OVERRIDES_VARIABLE = "GATEWAY_POLICIES"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,47}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_POLICY_KEYS = frozenset({"name", "limit", "window_s", "key", "counts"})
_OVERRIDE = re.compile(r"^([a-z][a-z0-9-]*)=([0-9]+)/([0-9]+)$")


@dataclass(frozen=True)
class Policy:
    name: str
    limit: int
    window_s: int
    key: str = "caller"
    counts: str = "requests"

    @property
    def window_us(self) -> int:
        return self.window_s * 1_000_000

    @property
    def body_field(self) -> str | None:
        """The JSON body field that keys this policy, if it is keyed by one."""
        if self.key.startswith(BODY_KEY_PREFIX):
            return self.key[len(BODY_KEY_PREFIX) :]
        return None

    def describe(self) -> str:
        what = "failed logins" if self.counts == "failures" else "requests"
        return f"{self.limit} {what} per {self.window_s}s"


@dataclass(frozen=True)
class RouteLimits:
    """The policies of one route and what to do when Redis cannot decide."""

    policies: tuple[Policy, ...] = ()
    fail: str = "open"
    # RateLimit-Policy, computed once; failure budgets are not advertised.
    policy_header: bytes = field(default=b"", compare=False)

    @property
    def body_fields(self) -> tuple[str, ...]:
        return tuple(p.body_field for p in self.policies if p.body_field)


NO_LIMITS = RouteLimits()


def parse_policies(
    raw: Any, source: str, overrides: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, Policy]:
    """The policies of a route table by name, with GATEWAY_POLICIES applied."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: policies must be a list of tables, not {raw!r}")
    policies: dict[str, Policy] = {}
    for index, entry in enumerate(raw):
        policy = _parse_policy(entry, f"{source}: policies[{index}]")
        if policy.name in policies:
            raise ConfigError(
                f"{source}: policies[{index}] repeats the name {policy.name!r}"
            )
        policies[policy.name] = policy
    for name, (limit, window_s) in (overrides or {}).items():
        if name not in policies:
            known = ", ".join(sorted(policies)) or "none"
            raise ConfigError(
                f"{OVERRIDES_VARIABLE} changes policy {name!r}, which the route "
                f"table does not declare; declared: {known}"
            )
        policies[name] = Policy(
            name, limit, window_s, policies[name].key, policies[name].counts
        )
    return policies


def parse_overrides(text: str) -> dict[str, tuple[int, int]]:
    """``name=limit/window_s,...`` (GATEWAY_POLICIES) as {name: (limit, window_s)}."""
    overrides: dict[str, tuple[int, int]] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        found = _OVERRIDE.match(part)
        if found is None or int(found.group(2)) < 1 or int(found.group(3)) < 1:
            raise ConfigError(
                f"{OVERRIDES_VARIABLE} has {part!r}; write name=limit/window_s with "
                "positive whole numbers, e.g. user-burst=50/1"
            )
        overrides[found.group(1)] = (int(found.group(2)), int(found.group(3)))
    return overrides


def route_limits(
    entry: Mapping[str, Any],
    defaults: RouteLimits,
    policies: Mapping[str, Policy],
    *,
    where: str,
    role: str | None,
) -> RouteLimits:
    """The limits a route (or version, with ``role`` None) declares over defaults."""
    names = entry.get("limits")
    chosen = defaults.policies
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(
                f"{where}.limits is {names!r}; use a list of policy names"
            )
        unknown = [name for name in names if name not in policies]
        if unknown:
            known = ", ".join(sorted(policies)) or "none"
            raise ConfigError(
                f"{where}.limits names undeclared policy {unknown[0]!r}; "
                f"declared: {known}"
            )
        chosen = tuple(policies[name] for name in names)
    fail = entry.get("limits_fail", defaults.fail)
    if fail not in FAIL_MODES:
        raise ConfigError(f"{where}.limits_fail is {fail!r}; use open or closed")
    if role == "public":
        by_user = [p.name for p in chosen if p.key == "user"]
        if by_user:
            raise ConfigError(
                f"{where} is public but policy {by_user[0]!r} is keyed by user; "
                "a public route has no user: use key = 'ip' or 'caller'"
            )
    return RouteLimits(chosen, fail, policy_header(chosen))


def policy_header(policies: Sequence[Policy]) -> bytes:
    """The RateLimit-Policy value: ``"burst";q=20;w=1, "sustained";q=600;w=60``."""
    return ", ".join(
        f'"{p.name}";q={p.limit};w={p.window_s}'
        for p in policies
        if p.counts == "requests"
    ).encode()


def _parse_policy(entry: Any, where: str) -> Policy:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table, not {entry!r}")
    unknown = sorted(set(entry) - _POLICY_KEYS)
    missing = sorted({"name", "limit", "window_s"} - set(entry))
    if unknown or missing:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}, missing key(s) {missing}; a policy "
            "has name, limit and window_s, and may have key and counts"
        )
    name, limit, window_s = entry["name"], entry["limit"], entry["window_s"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{where}.name is {name!r}; use lower-case letters, digits and dashes"
        )
    for label, value in (("limit", limit), ("window_s", window_s)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{where}.{label} is {value!r}; use a positive whole number"
            )
    key = entry.get("key", "caller")
    body_field = key[len(BODY_KEY_PREFIX) :] if isinstance(key, str) else ""
    if key not in KEYS and not (
        isinstance(key, str)
        and key.startswith(BODY_KEY_PREFIX)
        and _FIELD.match(body_field)
    ):
        raise ConfigError(
            f"{where}.key is {key!r}; use caller, ip, user or body.<json field>"
        )
    counts = entry.get("counts", "requests")
    if counts not in COUNTS:
        raise ConfigError(f"{where}.counts is {counts!r}; use requests or failures")
    return Policy(name, limit, window_s, key, counts)
