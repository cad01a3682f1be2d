"""Reading the service's settings from its environment."""

from __future__ import annotations

import pytest

from services.learning.errors import ConfigError
from services.learning.settings import Settings

ENV = {
    "DATABASE_URL": "postgresql://campus@127.0.0.1:5432/campus",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "USERS_URLS": "http://127.0.0.1:8001, http://127.0.0.1:8002/",
}


def test_settings_from_env_reads_every_variable():
    settings = Settings.from_env({**ENV, "USERS_TIMEOUT_S": "1.5"})

    assert settings == Settings(
        database_url="postgresql://campus@127.0.0.1:5432/campus",
        redis_url="redis://127.0.0.1:6379/0",
        users_urls=("http://127.0.0.1:8001", "http://127.0.0.1:8002"),
        users_timeout_s=1.5,
    )


def test_settings_users_timeout_defaults_to_5s():
    assert Settings.from_env(ENV).users_timeout_s == 5.0


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL", "USERS_URLS"])
def test_settings_without_a_required_variable_names_it(name: str):
    env = {key: value for key, value in ENV.items() if key != name}

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)

    assert str(raised.value) == f"{name} is not set; the learning service needs it"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"REDIS_URL": "http://u:hunter2@cache:6379"},
            "REDIS_URL='http://u:***@cache:6379' is not a Redis URL; it must start "
            "with redis://, rediss:// or unix://",
        ),
        ({"USERS_URLS": " , "}, "USERS_URLS=',' lists no URL"),
        (
            {"USERS_URLS": "http://users:8000,users:8001"},
            "USERS_URLS has 'users:8001', which is not an http(s) URL",
        ),
        (
            {"USERS_URLS": "ftp://users"},
            "USERS_URLS has 'ftp://users', which is not an http(s) URL",
        ),
        (
            {"USERS_TIMEOUT_S": "soon"},
            "USERS_TIMEOUT_S='soon' is not a number of seconds",
        ),
        ({"USERS_TIMEOUT_S": "0"}, "USERS_TIMEOUT_S='0' must be more than 0"),
        (
            {"USERS_TIMEOUT_S": "61"},
            "USERS_TIMEOUT_S='61' is over the maximum of 60",
        ),
    ],
)
def test_settings_with_a_malformed_variable_names_it(
    changes: dict[str, str], message: str
):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**ENV, **changes})

    assert str(raised.value) == message
    assert "hunter2" not in str(raised.value)
