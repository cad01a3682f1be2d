"""The gateway's configuration, read once from the environment at start-up.

GATEWAY_ROUTES         route table file (default: routes.toml beside this module)
UPSTREAM_<SERVICE>     comma-separated replica URLs of each service in the table
JWKS_URL               where the access tokens' public keys are published
JWT_ISSUER             the ``iss`` every access token must carry
JWT_AUDIENCE           the ``aud`` every access token must carry
REDIS_URL              the Redis the gateway keeps its shared state in
GATEWAY_UPSTREAM_TIMEOUT_S   how long a service may take to answer (default 10)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from services.gateway.errors import ConfigError

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
            upstream_timeout_s=_seconds(env, "GATEWAY_UPSTREAM_TIMEOUT_S", 10.0),
        )


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


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{name} is {raw!r}; give a positive number of seconds")
    return value
