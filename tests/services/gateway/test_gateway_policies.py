"""Rate-limit policies in the route table, and their overrides from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.gateway.errors import ConfigError
from services.gateway.policies import Policy, parse_overrides, policy_header
from services.gateway.routes import load_routes, parse_routes

ROOT = Path(__file__).resolve().parents[3]


def table(**extra: Any) -> dict[str, Any]:
    return {
        "policies": [
            {"name": "burst", "limit": 20, "window_s": 1},
            {"name": "sustained", "limit": 600, "window_s": 60},
            {"name": "by-ip", "limit": 9, "window_s": 60, "key": "ip"},
            {"name": "fails", "limit": 5, "window_s": 900, "key": "body.email",
             "counts": "failures"},
        ],
        "versions": {
            "v1": {
                "limits": ["burst", "sustained"],
                "max_body_bytes": 2048,
                "routes": [
                    {"path": "/me", "methods": ["GET"], "service": "s",
                     "role": "user"},
                    {"path": "/login", "methods": ["POST"], "service": "s",
                     "role": "public", "limits": ["by-ip", "fails"],
                     "limits_fail": "closed", "max_body_bytes": 100},
                    {"path": "/free", "methods": ["GET"], "service": "s",
                     "role": "public", "limits": []},
                ],
            }
        },
        **extra,
    }  # fmt: skip


def test_route_limits_inherit_version_defaults() -> None:
    routes = parse_routes(table())

    me = routes.match("GET", "/api/v1/me").route

    assert [p.name for p in me.limits.policies] == ["burst", "sustained"]
    assert me.limits.fail == "open"
    assert me.max_body_bytes == 2048
    assert me.limits.policy_header == b'"burst";q=20;w=1, "sustained";q=600;w=60'


def test_route_limits_replace_version_defaults() -> None:
    routes = parse_routes(table())

    login = routes.match("POST", "/api/v1/login").route
    free = routes.match("GET", "/api/v1/free").route

    assert [p.name for p in login.limits.policies] == ["by-ip", "fails"]
    assert login.limits.fail == "closed"
    assert login.max_body_bytes == 100
    assert login.limits.body_fields == ("email",)
    # Failure budgets are not advertised.
    assert login.limits.policy_header == b'"by-ip";q=9;w=60'
    assert free.limits.policies == ()
    assert free.limits.policy_header == b""


def test_routes_outside_versions_have_no_limits_by_default() -> None:
    raw = table(routes=[{"path": "/x", "methods": ["GET"], "service": "s",
                         "role": "public"}])  # fmt: skip

    route = parse_routes(raw).match("GET", "/x").route

    assert route.limits.policies == ()
    assert route.max_body_bytes is None


def test_policy_overrides_change_limits_and_keep_the_rest() -> None:
    routes = parse_routes(table(), policy_overrides={"fails": (2, 60)})

    fails = routes.match("POST", "/api/v1/login").route.limits.policies[1]

    assert fails == Policy("fails", 2, 60, "body.email", "failures")
    assert fails.describe() == "2 failed logins per 60s"


def test_parse_overrides_reads_names_limits_and_windows() -> None:
    assert parse_overrides(" user-burst=50/1, auth-x=3000/60 ,") == {
        "user-burst": (50, 1),
        "auth-x": (3000, 60),
    }
    assert parse_overrides("") == {}


@pytest.mark.parametrize("text", ["burst=50", "burst=0/1", "burst=5/0", "b=1.5/1"])
def test_parse_overrides_names_the_bad_part(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_overrides(text)

    assert str(caught.value) == (
        f"GATEWAY_POLICIES has {text!r}; write name=limit/window_s with positive "
        "whole numbers, e.g. user-burst=50/1"
    )


def test_override_of_an_undeclared_policy_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_routes(table(), policy_overrides={"bursty": (1, 1)})

    assert str(caught.value) == (
        "GATEWAY_POLICIES changes policy 'bursty', which the route table does not "
        "declare; declared: burst, by-ip, fails, sustained"
    )


def policy(**fields: Any) -> dict[str, Any]:
    return {"name": "p", "limit": 1, "window_s": 1, **fields}


def route(**fields: Any) -> dict[str, Any]:
    return {"path": "/a", "methods": ["GET"], "service": "s", "role": "user", **fields}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"policies": {}}, "routes: policies must be a list of tables, not {}"),
        ({"policies": ["p"]}, "routes: policies[0] must be a table, not 'p'"),
        ({"policies": [{"name": "p"}]},
         "routes: policies[0]: unknown key(s) [], missing key(s) ['limit', "
         "'window_s']; a policy has name, limit and window_s, and may have key and "
         "counts"),
        ({"policies": [policy(name="Burst")]},
         "routes: policies[0].name is 'Burst'; use lower-case letters, digits and "
         "dashes"),
        ({"policies": [policy(limit=0)]},
         "routes: policies[0].limit is 0; use a positive whole number"),
        ({"policies": [policy(window_s=0.5)]},
         "routes: policies[0].window_s is 0.5; use a positive whole number"),
        ({"policies": [policy(key="header.x")]},
         "routes: policies[0].key is 'header.x'; use caller, ip, user or "
         "body.<json field>"),
        ({"policies": [policy(counts="errors")]},
         "routes: policies[0].counts is 'errors'; use requests or failures"),
        ({"policies": [policy(), policy()]},
         "routes: policies[1] repeats the name 'p'"),
        ({"routes": [route(limits="p")]},
         "routes: routes[0].limits is 'p'; use a list of policy names"),
        ({"policies": [policy()], "routes": [route(limits=["q"])]},
         "routes: routes[0].limits names undeclared policy 'q'; declared: p"),
        ({"routes": [route(limits_fail="maybe")]},
         "routes: routes[0].limits_fail is 'maybe'; use open or closed"),
        ({"policies": [policy(key="user")],
          "routes": [route(role="public", limits=["p"])]},
         "routes: routes[0] is public but policy 'p' is keyed by user; a public "
         "route has no user: use key = 'ip' or 'caller'"),
        ({"routes": [route(max_body_bytes="1k")]},
         "routes: routes[0].max_body_bytes is '1k'; use a whole number of bytes"),
        ({"versions": {"v1": {"limit": []}}},
         "routes: versions.v1: unknown key(s) limit; a version has limits, "
         "limits_fail, max_body_bytes, prefix, routes"),
    ],
)  # fmt: skip
def test_parse_policies_names_what_is_wrong(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_routes(raw)

    assert str(caught.value) == message


def test_policy_header_lists_only_request_budgets() -> None:
    policies = [Policy("a", 1, 2), Policy("f", 3, 4, counts="failures")]

    assert policy_header(policies) == b'"a";q=1;w=2'


def test_shipped_route_table_limits_users_by_user_and_auth_by_address() -> None:
    routes = load_routes(ROOT / "services/gateway/routes.toml")

    me = routes.match("GET", "/api/v1/users/me").route
    login = routes.match("POST", "/api/v1/auth/login").route
    register = routes.match("POST", "/api/v1/auth/register").route
    jwks = routes.match("GET", "/.well-known/jwks.json").route

    assert [p.key for p in me.limits.policies] == ["caller", "caller"]
    assert {p.key for p in login.limits.policies} == {"ip", "body.email"}
    assert register.limits.fail == "closed"
    assert login.limits.fail == "open"
    assert jwks.limits.policies == ()
