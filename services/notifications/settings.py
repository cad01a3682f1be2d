"""The service's settings, read from the environment; errors name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr

from services.common.errors import ConfigError
from services.common.events import STREAM
from services.common.settings import number
from services.common.settings import require as common_require

QUEUE_STREAM = "campus:notifications"
DEFAULT_MAX_ATTEMPTS = 5
MAX_MAX_ATTEMPTS = 100
DEFAULT_BACKOFF_S = 0.5
DEFAULT_BACKOFF_MAX_S = 5.0
DEFAULT_SMTP_TIMEOUT_S = 10.0
DEFAULT_RECLAIM_IDLE_S = 30.0


@dataclass(frozen=True)
class Settings:
    """What the service is told by its environment; see ``from_env``."""

    database_url: str
    redis_url: str
    users_urls: str
    smtp_host: str
    smtp_port: int
    mail_from: str
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: float = DEFAULT_BACKOFF_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    smtp_timeout_s: float = DEFAULT_SMTP_TIMEOUT_S
    reclaim_idle_s: float = DEFAULT_RECLAIM_IDLE_S
    queue_stream: str = QUEUE_STREAM
    events_stream: str = STREAM

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """DATABASE_URL, REDIS_URL, USERS_URLS (the users service's replicas,
        comma-separated), SMTP_HOST, SMTP_PORT and MAIL_FROM are required.

        Optional: NOTIFY_MAX_ATTEMPTS (5), NOTIFY_BACKOFF_S (0.5, doubled after
        each failed attempt), NOTIFY_BACKOFF_MAX_S (5), NOTIFY_SMTP_TIMEOUT_S
        (10), NOTIFY_RECLAIM_IDLE_S (30: how long a queue message may sit with
        a silent worker before another takes it over), NOTIFY_QUEUE_STREAM
        (campus:notifications) and EVENTS_STREAM (campus:events).
        """
        env = os.environ if env is None else env
        backoff_s = number(env, "NOTIFY_BACKOFF_S", DEFAULT_BACKOFF_S)
        backoff_max_s = number(env, "NOTIFY_BACKOFF_MAX_S", DEFAULT_BACKOFF_MAX_S)
        if backoff_max_s < backoff_s:
            raise ConfigError(
                f"NOTIFY_BACKOFF_MAX_S={backoff_max_s:g} is less than "
                f"NOTIFY_BACKOFF_S={backoff_s:g}"
            )
        return cls(
            database_url=require(env, "DATABASE_URL"),
            redis_url=require(env, "REDIS_URL"),
            users_urls=require(env, "USERS_URLS"),
            smtp_host=require(env, "SMTP_HOST"),
            smtp_port=port(env, "SMTP_PORT"),
            mail_from=address(env, "MAIL_FROM"),
            max_attempts=count(
                env, "NOTIFY_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS
            ),
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            smtp_timeout_s=number(
                env, "NOTIFY_SMTP_TIMEOUT_S", DEFAULT_SMTP_TIMEOUT_S, maximum=300
            ),
            reclaim_idle_s=number(
                env, "NOTIFY_RECLAIM_IDLE_S", DEFAULT_RECLAIM_IDLE_S, maximum=3600
            ),
            queue_stream=env.get("NOTIFY_QUEUE_STREAM", "").strip() or QUEUE_STREAM,
            events_stream=env.get("EVENTS_STREAM", "").strip() or STREAM,
        )


def require(env: Mapping[str, str], name: str) -> str:
    """The value of ``name``; a ConfigError naming it when it is unset or empty."""
    return common_require(env, name, "notifications")


def port(env: Mapping[str, str], name: str) -> int:
    """A TCP port number from ``name``."""
    raw = require(env, name)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}={raw!r} is not a TCP port number (1-65535)")
    return int(raw)


def address(env: Mapping[str, str], name: str) -> str:
    """An email address, with or without a display name, from ``name``."""
    raw = require(env, name)
    _, mailbox = parseaddr(raw)
    if "@" not in mailbox or any(c in raw for c in "\r\n"):
        raise ConfigError(
            f"{name}={raw!r} is not an email address such as "
            "'Campus <noreply@example.org>'"
        )
    return raw


def count(env: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    """A whole number from 1 to ``maximum`` from ``name``, or ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ConfigError(f"{name}={raw!r} is not a whole number from 1 to {maximum}")
    return int(raw)
