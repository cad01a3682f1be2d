"""The service's settings, read from the environment; errors name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.events import STREAM as EVENTS_STREAM
from services.common.settings import number
from services.common.settings import require as common_require

MAX_ACCESS_TOKEN_TTL_S = 900
DEFAULT_REFRESH_TOKEN_TTL_S = 14 * 24 * 3600
DEFAULT_KEYS_RELOAD_S = 2.0
# Two rescans and a second: every replica publishes a new key before it signs.
DEFAULT_KEYS_ACTIVATION_S = 5.0


@dataclass(frozen=True)
class Settings:
    """What the service is told by its environment; see ``from_env``."""

    database_url: str
    redis_url: str
    keys_dir: Path
    jwt_issuer: str
    jwt_audience: str
    access_token_ttl_s: int = MAX_ACCESS_TOKEN_TTL_S
    refresh_token_ttl_s: int = DEFAULT_REFRESH_TOKEN_TTL_S
    keys_reload_s: float = DEFAULT_KEYS_RELOAD_S
    keys_activation_s: float = DEFAULT_KEYS_ACTIVATION_S
    events_stream: str = EVENTS_STREAM

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """DATABASE_URL, REDIS_URL, USERS_KEYS_DIR, JWT_ISSUER and JWT_AUDIENCE are
        required;
        ACCESS_TOKEN_TTL_S (at most 900), REFRESH_TOKEN_TTL_S, KEYS_RELOAD_S and
        KEYS_ACTIVATION_S
        are optional."""
        env = os.environ if env is None else env
        return cls(
            database_url=require(env, "DATABASE_URL"),
            redis_url=require(env, "REDIS_URL"),
            events_stream=env.get("EVENTS_STREAM", "").strip() or EVENTS_STREAM,
            keys_dir=Path(require(env, "USERS_KEYS_DIR")),
            jwt_issuer=require(env, "JWT_ISSUER"),
            jwt_audience=require(env, "JWT_AUDIENCE"),
            access_token_ttl_s=int(
                number(
                    env,
                    "ACCESS_TOKEN_TTL_S",
                    MAX_ACCESS_TOKEN_TTL_S,
                    maximum=MAX_ACCESS_TOKEN_TTL_S,
                    integer=True,
                )
            ),
            refresh_token_ttl_s=int(
                number(
                    env,
                    "REFRESH_TOKEN_TTL_S",
                    DEFAULT_REFRESH_TOKEN_TTL_S,
                    integer=True,
                )
            ),
            keys_reload_s=number(env, "KEYS_RELOAD_S", DEFAULT_KEYS_RELOAD_S),
            keys_activation_s=number(
                env, "KEYS_ACTIVATION_S", DEFAULT_KEYS_ACTIVATION_S
            ),
        )


def require(env: Mapping[str, str], name: str) -> str:
    """The value of ``name``; a ConfigError naming it when it is unset or empty."""
    return common_require(env, name, "users")
