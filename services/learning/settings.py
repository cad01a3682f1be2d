"""The service's settings, read from the environment; errors name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.common.database import redact
from services.common.errors import ConfigError
from services.common.events import STREAM as EVENTS_STREAM
from services.common.settings import number
from services.common.settings import require as common_require

DEFAULT_USERS_TIMEOUT_S = 5.0
MAX_USERS_TIMEOUT_S = 60.0
REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Settings:
    """What the service is told by its environment; see ``from_env``."""

    database_url: str
    redis_url: str
    users_urls: tuple[str, ...]
    users_timeout_s: float = DEFAULT_USERS_TIMEOUT_S
    events_stream: str = EVENTS_STREAM

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """DATABASE_URL, REDIS_URL and USERS_URLS (the users service's replicas,
        comma-separated) are required; USERS_TIMEOUT_S is optional."""
        env = os.environ if env is None else env
        return cls(
            database_url=require(env, "DATABASE_URL"),
            redis_url=redis_url(require(env, "REDIS_URL")),
            events_stream=env.get("EVENTS_STREAM", "").strip() or EVENTS_STREAM,
            users_urls=replica_urls("USERS_URLS", require(env, "USERS_URLS")),
            users_timeout_s=number(
                env,
                "USERS_TIMEOUT_S",
                DEFAULT_USERS_TIMEOUT_S,
                maximum=MAX_USERS_TIMEOUT_S,
            ),
        )


def require(env: Mapping[str, str], name: str) -> str:
    """The value of ``name``; a ConfigError naming it when it is unset or empty."""
    return common_require(env, name, "learning")


def redis_url(value: str) -> str:
    """``value`` when it is a Redis URL; a ConfigError naming REDIS_URL otherwise."""
    scheme = urlsplit(value).scheme
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"REDIS_URL={redact(value)!r} is not a Redis URL; "
            "it must start with redis://, rediss:// or unix://"
        )
    return value


def replica_urls(name: str, value: str) -> tuple[str, ...]:
    """The http(s) URLs of a comma-separated list; a ConfigError naming the bad one."""
    urls = tuple(url.strip().rstrip("/") for url in value.split(",") if url.strip())
    if not urls:
        raise ConfigError(f"{name}={value!r} lists no URL")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{name} has {redact(url)!r}, which is not an http(s) URL"
            )
    return urls
