"""Settings from the environment, and replicas taken in turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.errors import ConfigError
from services.gateway.settings import DEFAULT_ROUTES, Settings, upstream_variable
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
         "JWKS_URL has 'users/jwks', which is not an http(s)://host:port URL"),
        ({"UPSTREAM_USERS": "http://a:1,,http://b:2"},
         "UPSTREAM_USERS has '', which is not an http(s)://host:port URL"),
        ({"GATEWAY_UPSTREAM_TIMEOUT_S": "soon"},
         "GATEWAY_UPSTREAM_TIMEOUT_S is 'soon'; give a positive number of seconds"),
        ({"GATEWAY_UPSTREAM_TIMEOUT_S": "0"},
         "GATEWAY_UPSTREAM_TIMEOUT_S is '0'; give a positive number of seconds"),
    ],
)  # fmt: skip
def test_settings_from_env_names_the_bad_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**ENV, **env})

    assert str(caught.value) == message


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
