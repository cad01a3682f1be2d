"""The gateway's configuration, read once from the environment at start-up.

GATEWAY_ROUTES         route table file (default: routes.toml beside this module)
UPSTREAM_<SERVICE>     comma-separated replica URLs of each service in the table
JWKS_URL               where the access tokens' public keys are published: a URL,
                       comma-separated URLs (tried in turn), or the path of a
                       GET route (e.g. /.well-known/jwks.json), fetched from
                       the replicas of the route's service in turn
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
                             rate-limit key; every process needs the same one.
                             Unset, a single process makes up its own (and
                             warns); with GATEWAY_PROCESSES over 1 it is required
GATEWAY_MAX_IN_FLIGHT        requests one process handles at once; more get 503 (1000)
GATEWAY_MAX_BODY_BYTES       body size of routes without their own limit (1 MiB)
GATEWAY_BODY_TIMEOUT_S       how long a request body may take to arrive (10)
GATEWAY_HEADER_TIMEOUT_S     how long a request head may take to arrive (10); read
                             by the HTTP protocol of ``server.py``
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from services.gateway.client_ip import Network, parse_networks
from services.gateway.errors import ConfigError
from services.gateway.policies import parse_overrides

logger = logging.getLogger(__name__)

DEFAULT_ROUTES = Path(__file__).with_name("routes.toml")
UPSTREAM_PREFIX = "UPSTREAM_"


def random_secret() -> bytes:
    """A key for the hash of rate-limit keys that only this process knows."""
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class Settings:
    routes_path: Path
    upstreams: Mapping[str, tuple[str, ...]]
    # http(s) URLs tried in turn, or one path of the route table.
    jwks_urls: tuple[str, ...]
    issuer: str
    audience: str
    redis_url: str
    upstream_timeout_s: float = 10.0
    connect_timeout_s: float = 1.0
    replica_cooldown_s: float = 5.0
    jwks_refresh_s: float = 60.0
    # Below the lead the users service gives a new key before it signs with
    # it (KEYS_ACTIVATION_S - KEYS_RELOAD_S, 3 s), so that a fetch for
    # made-up kids just before a key is published cannot keep the gateway
    # from knowing it at its first use.
    jwks_min_refetch_s: float = 2.0
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
    limit_key_secret: bytes = field(default_factory=random_secret)
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
        processes = _count(env, "GATEWAY_PROCESSES", 1)
        return cls(
            routes_path=Path(env.get("GATEWAY_ROUTES") or DEFAULT_ROUTES),
            upstreams=upstreams,
            jwks_urls=parse_jwks_urls(_required(env, "JWKS_URL")),
            issuer=_required(env, "JWT_ISSUER"),
            audience=_required(env, "JWT_AUDIENCE"),
            redis_url=_required(env, "REDIS_URL"),
            upstream_timeout_s=_positive(env, "GATEWAY_UPSTREAM_TIMEOUT_S", 10.0),
            policy_overrides=parse_overrides(env.get("GATEWAY_POLICIES", "")),
            trusted_proxies=parse_networks(env.get("GATEWAY_TRUSTED_PROXIES", "")),
            redis_timeout_s=_positive(env, "GATEWAY_REDIS_TIMEOUT_MS", 5.0) / 1000,
            breaker_failures=_count(env, "GATEWAY_BREAKER_FAILURES", 5),
            breaker_cooldown_s=_positive(env, "GATEWAY_BREAKER_COOLDOWN_S", 2.0),
            processes=processes,
            limit_key_secret=_limit_key_secret(env, processes),
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


def parse_jwks_urls(value: str) -> tuple[str, ...]:
    """JWKS_URL: comma-separated http(s) URLs, or one path of the route table."""
    parts = tuple(part.strip() for part in value.split(","))
    if len(parts) == 1 and parts[0].startswith("/"):
        return parts
    for part in parts:
        parsed = urlsplit(part)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"JWKS_URL has {part!r}, which is neither an http(s)://host:port URL "
                "nor the path of a route like /.well-known/jwks.json"
            )
    return parts


def _limit_key_secret(env: Mapping[str, str], processes: int) -> bytes:
    secret = env.get("GATEWAY_LIMIT_KEY_SECRET", "")
    if secret:
        return secret.encode()
    # Gateways that share a Redis but not this secret key the same email
    # differently, so each counts its own failed logins for an account and
    # the per-account limit is multiplied by their number. Without the
    # secret the keys would be plain hashes of emails, which anyone who can
    # read Redis could match against a list of addresses. A process told it
    # shares the limits cannot be right without the secret and refuses to
    # start; a lone process is right with a secret of its own, and says so.
    if processes > 1:
        raise ConfigError(
            f"GATEWAY_LIMIT_KEY_SECRET is not set, but GATEWAY_PROCESSES is "
            f"{processes}: processes that share rate limits must share this secret; "
            "set it to the same random string in every gateway process"
        )
    logger.warning(
        "GATEWAY_LIMIT_KEY_SECRET is not set: this process keys rate limits by "
        "body fields with a secret of its own; gateways that share a Redis must "
        "share the secret, or each counts failed logins per account on its own"
    )
    return random_secret()


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
