"""Settings from the environment: defaults, limits, and errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.database import redact
from services.common.migrations import sqlalchemy_url
from services.users.errors import ConfigError
from services.users.settings import Settings

REQUIRED = {
    "DATABASE_URL": "postgresql://campus@127.0.0.1:5432/campus",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "USERS_KEYS_DIR": "/run/keys",
    "JWT_ISSUER": "campus-users",
    "JWT_AUDIENCE": "campus-api",
}


def test_settings_from_env_defaults():
    settings = Settings.from_env(REQUIRED)

    assert settings == Settings(
        database_url="postgresql://campus@127.0.0.1:5432/campus",
        redis_url="redis://127.0.0.1:6379/0",
        keys_dir=Path("/run/keys"),
        jwt_issuer="campus-users",
        jwt_audience="campus-api",
        access_token_ttl_s=900,
        refresh_token_ttl_s=14 * 24 * 3600,
        keys_reload_s=2.0,
    )


def test_settings_from_env_overrides():
    settings = Settings.from_env(
        {
            **REQUIRED,
            "ACCESS_TOKEN_TTL_S": "300",
            "REFRESH_TOKEN_TTL_S": "3600",
            "KEYS_RELOAD_S": "0.5",
        }
    )

    assert settings.access_token_ttl_s == 300
    assert settings.refresh_token_ttl_s == 3600
    assert settings.keys_reload_s == 0.5


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_settings_missing_variable_is_named(name: str):
    env = {**REQUIRED, name: "  "}

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)

    assert str(raised.value) == f"{name} is not set; the users service needs it"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "ACCESS_TOKEN_TTL_S",
            "901",
            "ACCESS_TOKEN_TTL_S='901' is over the maximum of 900",
        ),
        (
            "ACCESS_TOKEN_TTL_S",
            "1.5",
            "ACCESS_TOKEN_TTL_S='1.5' is not a whole number of seconds",
        ),
        ("REFRESH_TOKEN_TTL_S", "0", "REFRESH_TOKEN_TTL_S='0' must be more than 0"),
        ("KEYS_RELOAD_S", "soon", "KEYS_RELOAD_S='soon' is not a number of seconds"),
        ("KEYS_RELOAD_S", "nan", "KEYS_RELOAD_S='nan' must be more than 0"),
    ],
)
def test_settings_bad_number_is_named(name: str, value: str, message: str):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, name: value})

    assert str(raised.value) == message


def test_redact_hides_only_the_password():
    assert redact("postgresql://u:pw@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("postgresql://u@db/x") == "postgresql://u@db/x"


def test_sqlalchemy_url_selects_the_asyncpg_driver():
    assert sqlalchemy_url("postgres://u@db/x") == "postgresql+asyncpg://u@db/x"
    assert sqlalchemy_url("postgresql://u@db/x") == "postgresql+asyncpg://u@db/x"
    with pytest.raises(ConfigError, match="is not a postgresql:// URL"):
        sqlalchemy_url("db/x")
