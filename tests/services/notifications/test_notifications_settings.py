"""Settings from the environment: what is required, the defaults, and errors
that name the variable at fault."""

from __future__ import annotations

import pytest

from services.notifications.errors import ConfigError
from services.notifications.settings import Settings

REQUIRED = {
    "DATABASE_URL": "postgresql://campus@127.0.0.1:5432/campus",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "USERS_URLS": "http://127.0.0.1:8001,http://127.0.0.1:8002",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "1025",
    "MAIL_FROM": "Campus <noreply@campus.test>",
}


def test_settings_defaults():
    settings = Settings.from_env(REQUIRED)

    assert settings.smtp_port == 1025
    assert settings.users_urls == "http://127.0.0.1:8001,http://127.0.0.1:8002"
    assert settings.mail_from == "Campus <noreply@campus.test>"
    assert (settings.max_attempts, settings.backoff_s, settings.backoff_max_s) == (
        5,
        0.5,
        5.0,
    )
    assert settings.smtp_timeout_s == 10.0
    assert settings.reclaim_idle_s == 30.0
    assert settings.queue_stream == "campus:notifications"
    assert settings.events_stream == "campus:events"


def test_settings_overrides():
    settings = Settings.from_env(
        {
            **REQUIRED,
            "NOTIFY_MAX_ATTEMPTS": "8",
            "NOTIFY_BACKOFF_S": "0.1",
            "NOTIFY_BACKOFF_MAX_S": "0.4",
            "NOTIFY_SMTP_TIMEOUT_S": "3",
            "NOTIFY_RECLAIM_IDLE_S": "12",
            "NOTIFY_QUEUE_STREAM": "q",
            "EVENTS_STREAM": "e",
        }
    )

    assert (settings.max_attempts, settings.backoff_s, settings.backoff_max_s) == (
        8,
        0.1,
        0.4,
    )
    assert (settings.smtp_timeout_s, settings.reclaim_idle_s) == (3.0, 12.0)
    assert (settings.queue_stream, settings.events_stream) == ("q", "e")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_settings_without_a_required_variable_names_it(name: str):
    env = {key: value for key, value in REQUIRED.items() if key != name}

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)

    assert str(raised.value) == (
        f"{name} is not set; the notifications service needs it"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SMTP_PORT", "smtp", "SMTP_PORT='smtp' is not a TCP port number (1-65535)"),
        ("SMTP_PORT", "70000", "SMTP_PORT='70000' is not a TCP port number (1-65535)"),
        ("MAIL_FROM", "Campus", "MAIL_FROM='Campus' is not an email address such as "
         "'Campus <noreply@example.org>'"),
        ("NOTIFY_MAX_ATTEMPTS", "0",
         "NOTIFY_MAX_ATTEMPTS='0' is not a whole number from 1 to 100"),
        ("NOTIFY_MAX_ATTEMPTS", "2.5",
         "NOTIFY_MAX_ATTEMPTS='2.5' is not a whole number from 1 to 100"),
        ("NOTIFY_BACKOFF_S", "soon", "NOTIFY_BACKOFF_S='soon' is not a number of seconds"),
        ("NOTIFY_BACKOFF_MAX_S", "0.1",
         "NOTIFY_BACKOFF_MAX_S=0.1 is less than NOTIFY_BACKOFF_S=0.5"),
    ],
)  # fmt: skip
def test_settings_with_a_malformed_variable_names_it(
    name: str, value: str, message: str
):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, name: value})

    assert str(raised.value) == message
