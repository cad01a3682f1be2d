"""The gateway's configuration, read once from the environment at start-up.

GATEWAY_ROUTES         route table file (default: routes.toml beside this module)
UPSTREAM_<SERVICE>     comma-separated replica URLs of each service in the table
JWKS_URL               where the access tokens' public keys are published
JWT_ISSUER             the ``iss`` every access token must carry
JWT_AUDIENCE           the ``aud`` every access token must carry
REDIS_URL              the Redis the gateway keeps its shared state in
GATEWAY_UPSTREAM_TIMEOUT_S   how long a service may take to answer (default 10)

Rate limits and abuse protection:

GATEWAY_POLICIES             change policy limits: ``name=limit/window_s,...``
GATEWAY_TRUSTED_PROXIES      CIDRs whose X-Forwarded-For is believed (default none)
GATEWAY_REDIS_TIMEOUT_MS     how long a rate-limit decision waits for Redis (5)
GATEWAY_BREAKER_FAILURES     Redis failures in a row that open the breaker (5)
GATEWAY_BREAKER_COOLDOWN_S   how long the open breaker waits before a probe (2)
GATEWAY_PROCESSES            gateway processes sharing the limits; without Redis
                             each allows 1/N of every limit (default 1)
GATEWAY_LIMIT_KEY_SECRET     key of the hash that turns e.g. an email into a
                             rate-limit key; every process needs the same one
GATEWAY_MAX_IN_FLIGHT        requests one process handles at once; more get 503 (1000)
GATEWAY_MAX_BODY_BYTES       body size of routes without their own limit (1 MiB)
GATEWAY_BODY_TIMEOUT_S       how long a request body may take to arrive (10)
GATEWAY_HEADER_TIMEOUT_S     how long a request head may take to arrive (10); read
                             by the HTTP protocol of ``server.py``
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from services.gateway.client_ip import Network, parse_networks
from services.gateway.errors import ConfigError
from services.gateway.policies import parse_overrides

DEFAULT_ROUTES = Path(__file__).with_name("routes.toml")
UPSTREAM_PREFIX = "UPSTREAM_"


@dataclass(frozen=True)
class Settings:
    routes_path: Path
    upstreams: Mapping[str, tuple[str, ...]]
    jwks_url: str
    issuer: str
    audience: str
    redis_url: str
    upstream_timeout_s: float = 10.0
    connect_timeout_s: float = 1.0
    replica_cooldown_s: float = 5.0
    jwks_refresh_s: float = 60.0
    jwks_min_refetch_s: float = 3.0
    jwks_timeout_s: float = 2.0
    leeway_s: float = 5.0
    token_cache_size: int = 10_000
    max_body_bytes: int = 1024 * 1024
    readiness_timeout_s: float = 1.0
    policy_overrides: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    trusted_proxies: tuple[Network, ...] = ()
    redis_timeout_s: float = 0.005
    breaker_failures: int = 5
    breaker_cooldown_s: float = 2.0
    processes: int = 1
    limit_key_secret: bytes = b""
    max_in_flight: int = 1000
    body_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        upstreams = {
            name.removeprefix(UPSTREAM_PREFIX).lower().replace("_", "-"): parse_urls(
                value, name
            )
            for name, value in env.items()
            if name.startswith(UPSTREAM_PREFIX)
        }
        return cls(
            routes_path=Path(env.get("GATEWAY_ROUTES") or DEFAULT_ROUTES),
            upstreams=upstreams,
            jwks_url=_url(_required(env, "JWKS_URL"), "JWKS_URL"),
            issuer=_required(env, "JWT_ISSUER"),
            audience=_required(env, "JWT_AUDIENCE"),
            redis_url=_required(env, "REDIS_URL"),
            upstream_timeout_s=_positive(env, "GATEWAY_UPSTREAM_TIMEOUT_S", 10.0),
            policy_overrides=parse_overrides(env.get("GATEWAY_POLICIES", "")),
            trusted_proxies=parse_networks(env.get("GATEWAY_TRUSTED_PROXIES", "")),
            redis_timeout_s=_positive(env, "GATEWAY_REDIS_TIMEOUT_MS", 5.0) / 1000,
            breaker_failures=_count(env, "GATEWAY_BREAKER_FAILURES", 5),
            breaker_cooldown_s=_positive(env, "GATEWAY_BREAKER_COOLDOWN_S", 2.0),
            processes=_count(env, "GATEWAY_PROCESSES", 1),
            limit_key_secret=env.get("GATEWAY_LIMIT_KEY_SECRET", "").encode(),
            max_in_flight=_count(env, "GATEWAY_MAX_IN_FLIGHT", 1000),
            max_body_bytes=_count(env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024),
            body_timeout_s=_positive(env, "GATEWAY_BODY_TIMEOUT_S", 10.0),
        )


def header_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """GATEWAY_HEADER_TIMEOUT_S: how long a request head may take (default 10)."""
    env = os.environ if environ is None else environ
    return _positive(env, "GATEWAY_HEADER_TIMEOUT_S", 10.0)


def upstream_variable(service: str) -> str:
    """The environment variable that lists ``service``'s replicas."""
    return UPSTREAM_PREFIX + service.upper().replace("-", "_")


def parse_urls(value: str, name: str) -> tuple[str, ...]:
    """Comma-separated base URLs, each http(s)://host:port with no trailing slash."""
    urls = tuple(_url(part.strip(), name).rstrip("/") for part in value.split(","))
    if not urls:
        raise ConfigError(f"{name} lists no replica URLs")
    return urls


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required and is not set")
    return value


def _url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{name} has {value!r}, which is not an http(s)://host:port URL"
        )
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} is {raw!r}; give a positive whole number")
    return int(raw)


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        unit = "milliseconds" if name.endswith("_MS") else "seconds"
        raise ConfigError(f"{name} is {raw!r}; give a positive number of {unit}")
    return value
