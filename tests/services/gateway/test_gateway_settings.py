"""Settings from the environment, and replicas taken in turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.errors import ConfigError
from services.gateway.settings import (
    DEFAULT_ROUTES,
    Settings,
    header_timeout_s,
    upstream_variable,
)
from services.gateway.upstreams import Upstream, build_upstreams

ENV = {
    "JWKS_URL": "http://127.0.0.1:1/.well-known/jwks.json",
    "JWT_ISSUER": "campus-users",
    "JWT_AUDIENCE": "campus-api",
    "REDIS_URL": "redis://127.0.0.1:2/0",
}


def test_settings_from_env_reads_upstreams_and_defaults() -> None:
    settings = Settings.from_env(
        {
            **ENV,
            "UPSTREAM_USERS": "http://a:1, http://b:2/",
            "UPSTREAM_CO_MP": "http://c:3",
        }
    )

    assert settings.upstreams == {
        "users": ("http://a:1", "http://b:2"),
        "co-mp": ("http://c:3",),
    }
    assert settings.routes_path == DEFAULT_ROUTES
    assert settings.upstream_timeout_s == 10.0
    assert upstream_variable("co-mp") == "UPSTREAM_CO_MP"


def test_settings_from_env_reads_routes_and_timeout() -> None:
    settings = Settings.from_env(
        {**ENV, "GATEWAY_ROUTES": "r.toml", "GATEWAY_UPSTREAM_TIMEOUT_S": "2.5"}
    )

    assert settings.routes_path == Path("r.toml")
    assert settings.upstream_timeout_s == 2.5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JWT_ISSUER": ""},
         "environment variable JWT_ISSUER is required and is not set"),
        ({"JWKS_URL": "users/jwks"},
         "JWKS_URL has 'users/jwks', which is neither an http(s)://host:port URL "
         "nor the path of a route like /.well-known/jwks.json"),
        ({"JWKS_URL": "http://a:1/jwks, /jwks"},
         "JWKS_URL has '/jwks', which is neither an http(s)://host:port URL "
         "nor the path of a route like /.well-known/jwks.json"),
        ({"GATEWAY_PROCESSES": "2"},
         "GATEWAY_LIMIT_KEY_SECRET is not set, but GATEWAY_PROCESSES is 2: processes "
         "that share rate limits must share this secret; set it to the same random "
         "string in every gateway process"),
        ({"UPSTREAM_USERS": "http://a:1,,http://b:2"},
         "UPSTREAM_USERS has '', which is not an http(s)://host:port URL"),
        ({"GATEWAY_UPSTREAM_TIMEOUT_S": "soon"},
         "GATEWAY_UPSTREAM_TIMEOUT_S is 'soon'; give a positive number of seconds"),
        ({"GATEWAY_UPSTREAM_TIMEOUT_S": "0"},
         "GATEWAY_UPSTREAM_TIMEOUT_S is '0'; give a positive number of seconds"),
        ({"GATEWAY_REDIS_TIMEOUT_MS": "-1"},
         "GATEWAY_REDIS_TIMEOUT_MS is '-1'; give a positive number of milliseconds"),
        ({"GATEWAY_MAX_IN_FLIGHT": "lots"},
         "GATEWAY_MAX_IN_FLIGHT is 'lots'; give a positive whole number"),
        ({"GATEWAY_PROCESSES": "0"},
         "GATEWAY_PROCESSES is '0'; give a positive whole number"),
        ({"GATEWAY_TRUSTED_PROXIES": "proxy.local"},
         "GATEWAY_TRUSTED_PROXIES has 'proxy.local', which is not an address or "
         "CIDR like 10.0.0.0/8 or fd00::/8"),
        ({"GATEWAY_POLICIES": "burst"},
         "GATEWAY_POLICIES has 'burst'; write name=limit/window_s with positive "
         "whole numbers, e.g. user-burst=50/1"),
    ],
)  # fmt: skip
def test_settings_from_env_names_the_bad_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**ENV, **env})

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("http://a:1/jwks", ("http://a:1/jwks",)),
        ("http://a:1/jwks, https://b/jwks", ("http://a:1/jwks", "https://b/jwks")),
        ("/.well-known/jwks.json", ("/.well-known/jwks.json",)),
    ],
)
def test_settings_from_env_reads_jwks_urls_or_path(
    value: str, urls: tuple[str, ...]
) -> None:
    assert Settings.from_env({**ENV, "JWKS_URL": value}).jwks_urls == urls


def test_settings_make_up_a_limit_key_secret_of_their_own_and_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = Settings.from_env(ENV), Settings.from_env(ENV)

    assert len(first.limit_key_secret) == 32
    assert first.limit_key_secret != second.limit_key_secret
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        warnings
        == [
            "GATEWAY_LIMIT_KEY_SECRET is not set: this process keys rate limits by "
            "body fields with a secret of its own; gateways that share a Redis must "
            "share the secret, or each counts failed logins per account on its own"
        ]
        * 2
    )


def test_settings_from_env_reads_limits_and_protections() -> None:
    settings = Settings.from_env(
        {
            **ENV,
            "GATEWAY_POLICIES": "user-burst=50/1",
            "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
            "GATEWAY_REDIS_TIMEOUT_MS": "2.5",
            "GATEWAY_BREAKER_FAILURES": "7",
            "GATEWAY_BREAKER_COOLDOWN_S": "0.5",
            "GATEWAY_PROCESSES": "4",
            "GATEWAY_LIMIT_KEY_SECRET": "pepper",
            "GATEWAY_MAX_IN_FLIGHT": "64",
            "GATEWAY_MAX_BODY_BYTES": "2048",
            "GATEWAY_BODY_TIMEOUT_S": "3",
        }
    )

    assert settings.policy_overrides == {"user-burst": (50, 1)}
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert settings.redis_timeout_s == 0.0025
    assert (settings.breaker_failures, settings.breaker_cooldown_s) == (7, 0.5)
    assert settings.processes == 4
    assert settings.limit_key_secret == b"pepper"
    assert (settings.max_in_flight, settings.max_body_bytes) == (64, 2048)
    assert settings.body_timeout_s == 3.0


def test_settings_defaults_of_limits_and_protections() -> None:
    settings = Settings.from_env(ENV)

    assert settings.redis_timeout_s == 0.005
    assert settings.trusted_proxies == ()
    assert settings.max_body_bytes == 1024 * 1024
    assert header_timeout_s({}) == 10.0
    assert header_timeout_s({"GATEWAY_HEADER_TIMEOUT_S": "2"}) == 2.0


def test_build_upstreams_requires_every_routed_service() -> None:
    with pytest.raises(ConfigError) as caught:
        build_upstreams(
            frozenset({"users", "learning"}), {"users": ("http://a:1",)}, cooldown_s=5
        )

    assert str(caught.value) == (
        "the route table names service(s) learning but UPSTREAM_LEARNING is not set; "
        "set it to comma-separated replica URLs"
    )


def test_upstream_round_robins_and_rests_refusing_replica() -> None:
    now = [0.0]
    upstream = Upstream("users", ["http://a", "http://b", "http://c"],
                        cooldown_s=5.0, clock=lambda: now[0])  # fmt: skip
    first = [upstream.pick() for _ in range(3)]
    assert [r.url for r in first if r] == ["http://a", "http://b", "http://c"]

    upstream.mark_down(upstream.replicas[1], "connection refused")
    resting = [r.url for r in (upstream.pick() for _ in range(4)) if r]
    now[0] += 5.0
    back = [r.url for r in (upstream.pick() for _ in range(3)) if r]

    assert resting == ["http://a", "http://c", "http://a", "http://c"]
    assert sorted(back) == ["http://a", "http://b", "http://c"]


def test_upstream_without_healthy_replica_picks_none() -> None:
    upstream = Upstream("users", ["http://a"], clock=lambda: 0.0)
    upstream.mark_down(upstream.replicas[0], "refused")

    assert upstream.pick() is None


def test_upstream_needs_a_replica() -> None:
    with pytest.raises(ConfigError) as caught:
        Upstream("users", [])

    assert str(caught.value) == "service 'users' has no replica URLs"
