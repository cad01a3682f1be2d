"""The route table: loading, validation, and which pattern a path matches."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from services.gateway.errors import ConfigError, MethodNotAllowed, NotFound
from services.gateway.routes import RouteTable, load_routes, parse_routes

ROUTES_TOML = Path(__file__).parents[3] / "services" / "gateway" / "routes.toml"


def route(path: str, *methods: str, service: str = "users", role: str = "user") -> Any:
    return {"path": path, "methods": list(methods), "service": service, "role": role}


def table(*routes: Any, version: str = "v1") -> RouteTable:
    return parse_routes({"versions": {version: {"routes": list(routes)}}})


def test_routes_file_of_the_stack_loads() -> None:
    routes = load_routes(ROUTES_TOML)

    assert routes.services == {"users", "learning", "programs", "notifications"}
    assert routes.match("POST", "/api/v1/auth/login").route.role == "public"
    assert routes.match("POST", "/api/v1/auth/logout").route.role == "user"
    assert routes.match("GET", "/api/v1/users/me").route.role == "user"
    assert routes.match("GET", "/api/v1/users").route.role == "admin"
    assert routes.match("PATCH", "/api/v1/users/abc").route.role == "admin"
    assert routes.match("GET", "/.well-known/jwks.json").route.role == "public"
    assert routes.match("GET", "/api/v1/certificates/c0de/verify").route.role == (
        "public"
    )
    assert routes.match("GET", "/api/v1/programs/me").route.role == "user"
    assert routes.match("GET", "/api/v1/programs/p1/progress").route.role == "admin"
    assert routes.match("GET", "/api/v2/courses").route.response_headers == ()
    assert dict(routes.match("GET", "/api/v1/courses").route.response_headers) == {
        b"deprecation": b"@1796083200",
        b"sunset": b"Wed, 01 Dec 2027 00:00:00 GMT",
        b"link": b'</api/v2/courses>; rel="successor-version"',
    }


def test_match_literal_beats_param() -> None:
    routes = table(route("/users/{id}", "GET"), route("/users/me", "GET"))

    assert routes.match("GET", "/api/v1/users/me").route.template == "/api/v1/users/me"
    assert routes.match("GET", "/api/v1/users/42").params == {"id": "42"}


def test_match_longer_pattern_goes_to_its_own_service() -> None:
    routes = table(
        route("/users/{id}", "GET", "PATCH"),
        route("/users/{id}/competencies", "GET", service="competency"),
    )

    deeper = routes.match("GET", "/api/v1/users/7/competencies")
    shorter = routes.match("GET", "/api/v1/users/7")

    assert (deeper.route.service, deeper.params) == ("competency", {"id": "7"})
    assert shorter.route.service == "users"


def test_match_backtracks_from_literal_to_param() -> None:
    routes = table(route("/users/me", "GET"), route("/users/{id}/gap", "GET"))

    assert routes.match("GET", "/api/v1/users/me/gap").params == {"id": "me"}


def test_match_leftmost_literal_decides() -> None:
    routes = table(route("/a/{x}/c", "GET", service="one"),
                   route("/{y}/b/c", "GET", service="two"))  # fmt: skip

    assert routes.match("GET", "/api/v1/a/b/c").route.service == "one"


def test_match_separates_versions() -> None:
    routes = parse_routes(
        {
            "versions": {
                "v1": {"routes": [route("/courses", "GET", service="learning")]},
                "v2": {"routes": [route("/courses", "GET", service="learning-v2")]},
            }
        }
    )

    assert routes.match("GET", "/api/v1/courses").route.version == "v1"
    assert routes.match("GET", "/api/v2/courses").route.service == "learning-v2"
    with pytest.raises(NotFound):
        routes.match("GET", "/api/v3/courses")


def test_match_unknown_path_is_not_found() -> None:
    routes = table(route("/users/{id}", "GET"))

    for path in ("/api/v1/users", "/api/v1/users/1/2", "/api/v1/users/1/",
                 "/api/v1//users/1", "", "api/v1/users/1"):  # fmt: skip
        with pytest.raises(NotFound) as caught:
            routes.match("GET", path)
        assert str(caught.value) == f"no route matches path {path!r}"


@pytest.mark.parametrize(
    "segment", ["..", ".", "%2e%2e", "%2E.", "a%2Fb", "a%2fb", "a%5Cb"]
)
def test_match_rejects_params_that_escape_their_segment(segment: str) -> None:
    routes = table(route("/users/{id}", "GET"))

    with pytest.raises(NotFound):
        routes.match("GET", f"/api/v1/users/{segment}")


def test_match_keeps_param_percent_encoded() -> None:
    routes = table(route("/users/{id}", "GET"))

    assert routes.match("GET", "/api/v1/users/a%20b").params == {"id": "a%20b"}


def test_match_wrong_method_names_allowed_ones() -> None:
    routes = table(route("/users/me", "GET"), route("/users/{id}", "PATCH", "DELETE"))

    with pytest.raises(MethodNotAllowed) as caught:
        routes.match("POST", "/api/v1/users/7")
    with pytest.raises(MethodNotAllowed) as on_literal:
        routes.match("PATCH", "/api/v1/users/me")

    assert str(caught.value) == (
        "POST is not allowed on '/api/v1/users/7'; allowed: DELETE, PATCH"
    )
    assert caught.value.headers == (("allow", "DELETE, PATCH"),)
    assert on_literal.value.headers == (("allow", "GET"),)


def test_parse_routes_unversioned_and_custom_prefix() -> None:
    routes = parse_routes(
        {
            "routes": [route("/.well-known/jwks.json", "GET", role="public")],
            "versions": {"v3": {"prefix": "/next", "routes": [route("/x", "GET")]}},
        }
    )

    assert routes.match("GET", "/.well-known/jwks.json").route.version is None
    assert routes.match("GET", "/next/x").route.template == "/next/x"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"route": []},
         "routes: unknown key(s) route; use policies, routes and versions"),
        ({"routes": {}}, "routes: routes must be a list of tables, not {}"),
        ({"versions": []}, "routes: versions must be a table, not []"),
        ({"versions": {"one": {}}},
         "routes: versions.one must be a table named v1, v2, ...; got 'one' = {}"),
        ({"versions": {"v1": {"prefix": "api"}}},
         "routes: versions.v1.prefix must be a path like '/api/v1'"),
        ({"routes": ["x"]}, "routes: routes[0] must be a table, not 'x'"),
        ({"routes": [{"path": "/a", "methods": ["GET"], "service": "s"}]},
         "routes: routes[0]: unknown key(s) [], missing key(s) ['role']; "
         "a route has methods, path, role, service, and may have deprecated, "
         "limits, limits_fail, max_body_bytes, successor, sunset"),
        ({"routes": [{**route("/a", "GET"), "sunset": dt.date(2027, 1, 1)}]},
         "routes: routes[0]: a deprecated route needs all of deprecated, sunset and "
         "successor; missing deprecated, successor"),
        ({"routes": [{**route("/a", "GET"), "deprecated": "soon",
                      "sunset": dt.date(2027, 1, 1), "successor": "/b"}]},
         "routes: routes[0].deprecated must be a TOML date like 2027-06-30"),
        ({"routes": [{**route("/a", "GET"), "deprecated": dt.date(2026, 1, 1),
                      "sunset": dt.date(2027, 1, 1), "successor": "b"}]},
         "routes: routes[0].successor must be a path like '/api/v2/...'"),
        ({"routes": [route("a", "GET")]},
         "routes: routes[0].path is 'a'; a path starts with '/'"),
        ({"routes": [route("/a//b", "GET")]},
         "routes: routes[0].path '/a//b' has a bad segment ''; segments are literal "
         "text or {name}, never empty, '.', '..', or with %?#"),
        ({"routes": [route("/a/{x}/{x}", "GET")]},
         "routes: routes[0].path '/a/{x}/{x}' repeats a parameter name"),
        ({"routes": [route("/a", "FETCH")]},
         "routes: routes[0].methods is ['FETCH']; use a non-empty list of DELETE, "
         "GET, HEAD, OPTIONS, PATCH, POST, PUT"),
        ({"routes": [route("/a", "GET", service="Users")]},
         "routes: routes[0].service is 'Users'; use a lower-case name like 'users'"),
        ({"routes": [route("/a", "GET", role="root")]},
         "routes: routes[0].role is 'root'; use one of public, user, admin"),
        ({"routes": [route("/a/{x}", "GET"), route("/a/{y}", "GET")]},
         "routes '/a/{x}' and '/a/{y}' both take GET; a path and method may have "
         "only one route"),
    ],
)  # fmt: skip
def test_parse_routes_names_what_is_wrong(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_routes(raw)

    assert str(caught.value) == message


def test_load_routes_reports_missing_and_invalid_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[routes]\n")

    with pytest.raises(ConfigError) as missing:
        load_routes(tmp_path / "absent.toml")
    with pytest.raises(ConfigError) as invalid:
        load_routes(broken)

    assert (
        str(missing.value) == f"route table {tmp_path / 'absent.toml'} does not exist"
    )
    assert str(invalid.value).startswith(f"route table {broken} is not valid TOML: ")
