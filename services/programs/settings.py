"""The service's settings, read from the environment; errors name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.common.errors import ConfigError
from services.common.events import STREAM as EVENTS_STREAM
from services.common.settings import number
from services.common.settings import require as common_require

DEFAULT_INTERNAL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Settings:
    """What the service is told by its environment; see ``from_env``."""

    database_url: str
    redis_url: str
    users_urls: tuple[str, ...]
    learning_urls: tuple[str, ...]
    internal_timeout_s: float = DEFAULT_INTERNAL_TIMEOUT_S
    events_stream: str = EVENTS_STREAM

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """DATABASE_URL, REDIS_URL, USERS_URLS and LEARNING_URLS are required (the
        last two: comma-separated base URLs of the replicas); INTERNAL_TIMEOUT_S,
        how long a call to another service may take, is optional."""
        env = os.environ if env is None else env
        return cls(
            database_url=require(env, "DATABASE_URL"),
            redis_url=require(env, "REDIS_URL"),
            events_stream=env.get("EVENTS_STREAM", "").strip() or EVENTS_STREAM,
            users_urls=replica_urls(env, "USERS_URLS"),
            learning_urls=replica_urls(env, "LEARNING_URLS"),
            internal_timeout_s=number(
                env, "INTERNAL_TIMEOUT_S", DEFAULT_INTERNAL_TIMEOUT_S, maximum=60
            ),
        )


def require(env: Mapping[str, str], name: str) -> str:
    """The value of ``name``; a ConfigError naming it when it is unset or empty."""
    return common_require(env, name, "programs")


def replica_urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """The http(s) URLs listed, comma-separated, in ``name``."""
    urls = tuple(url.strip() for url in require(env, name).split(",") if url.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{name} lists {url!r}, which is not an http(s) URL")
    if not urls:
        raise ConfigError(f"{name} lists no URL; the programs service needs one")
    return urls
