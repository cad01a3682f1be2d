"""The route table: which service answers a path, for which methods and roles.

The table is configuration, read from TOML (see ``routes.toml`` beside this
module)::

    [[routes]]                      # routes outside any API version
    path = "/.well-known/jwks.json"
    methods = ["GET"]
    service = "users"               # replicas from env UPSTREAM_USERS
    role = "public"                 # public | user | admin

    [versions.v1]
    prefix = "/api/v1"              # the default for v1

    [[versions.v1.routes]]          # matches /api/v1/users/{id}
    path = "/users/{id}"
    methods = ["PATCH"]
    service = "users"
    role = "admin"

A route that a newer API version replaces says so, and every answer on it
carries ``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and a ``Link`` to
its successor::

    { path = "/courses", ..., deprecated = 2026-12-01, sunset = 2027-06-30,
      successor = "/api/v2/courses" }

A pattern matches a whole path, segment by segment; ``{name}`` matches any
one segment. When several patterns match, the most specific wins: at the
first segment where they differ, a literal beats a parameter. Only that
pattern's methods count: a method it lacks is a 405 even if a less specific
pattern would take it.

Rate-limit policies are declared at the top (``policies = [...]``) and named
by a route's or version's ``limits``; ``limits_fail`` says what a route does
when Redis cannot decide (see ``policies.py``). ``max_body_bytes`` caps a
route's (or a version's routes') request bodies; without it the gateway's
GATEWAY_MAX_BODY_BYTES applies.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from services.gateway.errors import ConfigError, MethodNotAllowed, NotFound
from services.gateway.policies import (
    NO_LIMITS,
    Policy,
    RouteLimits,
    parse_policies,
    route_limits,
)

ROLES = ("public", "user", "admin")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9-]*$")
_VERSION = re.compile(r"^v[0-9]+$")
_ROUTE_KEYS = frozenset({"path", "methods", "service", "role"})
_DEPRECATION_KEYS = frozenset({"deprecated", "sunset", "successor"})
_LIMIT_KEYS = frozenset({"limits", "limits_fail", "max_body_bytes"})
_VERSION_KEYS = frozenset({"prefix", "routes"}) | _LIMIT_KEYS
_UNSAFE_SEGMENTS = frozenset({"", ".", ".."})


@dataclass(frozen=True)
class Route:
    """One pattern and the methods, service and minimum role it stands for."""

    template: str
    methods: frozenset[str]
    service: str
    role: str
    version: str | None = None
    params: tuple[str, ...] = ()
    # Added to every answer on this route, e.g. Deprecation and Sunset.
    response_headers: tuple[tuple[bytes, bytes], ...] = ()
    limits: RouteLimits = NO_LIMITS
    # None: the gateway's default (GATEWAY_MAX_BODY_BYTES).
    max_body_bytes: int | None = None


@dataclass(frozen=True)
class Match:
    route: Route
    params: Mapping[str, str]


@dataclass
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    by_method: dict[str, Route] = field(default_factory=dict)


class RouteTable:
    """Routes indexed as a tree of path segments, for matching without a scan."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._root = _Node()
        for route in self.routes:
            self._add(route)

    @property
    def services(self) -> frozenset[str]:
        return frozenset(route.service for route in self.routes)

    def match(self, method: str, path: str) -> Match:
        """The route for ``method`` and the raw (still percent-encoded) ``path``.

        Raises NotFound when no pattern matches, MethodNotAllowed (with an
        ``Allow`` header) when the most specific one lacks the method.
        """
        if not path.startswith("/"):
            raise NotFound(f"no route matches path {path!r}")
        values: list[str] = []
        node = _find(self._root, path[1:].split("/"), 0, values)
        if node is None:
            raise NotFound(f"no route matches path {path!r}")
        route = node.by_method.get(method)
        if route is None:
            allowed = ", ".join(sorted(node.by_method))
            raise MethodNotAllowed(
                f"{method} is not allowed on {path!r}; allowed: {allowed}",
                headers=(("allow", allowed),),
            )
        return Match(route, dict(zip(route.params, values, strict=True)))

    def _add(self, route: Route) -> None:
        node = self._root
        for segment in route.template[1:].split("/"):
            if _PARAM.match(segment):
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                node = node.literals.setdefault(segment, _Node())
        for method in sorted(route.methods):
            if method in node.by_method:
                other = node.by_method[method]
                raise ConfigError(
                    f"routes {other.template!r} and {route.template!r} both take "
                    f"{method}; a path and method may have only one route"
                )
            node.by_method[method] = route


def _find(
    node: _Node, segments: list[str], index: int, values: list[str]
) -> _Node | None:
    if index == len(segments):
        return node if node.by_method else None
    segment = segments[index]
    child = node.literals.get(segment)
    if child is not None:
        found = _find(child, segments, index + 1, values)
        if found is not None:
            return found
    if node.param is not None and _is_safe_param(segment):
        values.append(segment)
        found = _find(node.param, segments, index + 1, values)
        if found is not None:
            return found
        values.pop()
    return None


def _is_safe_param(segment: str) -> bool:
    """False for values a service could read as another path (``..``, ``%2F``)."""
    if segment in _UNSAFE_SEGMENTS:
        return False
    if "%" not in segment:
        return True
    decoded = unquote(segment)
    return (
        decoded not in _UNSAFE_SEGMENTS and "/" not in decoded and "\\" not in decoded
    )


def load_routes(
    path: Path, policy_overrides: Mapping[str, tuple[int, int]] | None = None
) -> RouteTable:
    """Read and validate a route table file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"route table {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"route table {path} is not valid TOML: {exc}") from exc
    return parse_routes(raw, source=str(path), policy_overrides=policy_overrides)


@dataclass(frozen=True)
class _Defaults:
    """What a route inherits from where it is declared."""

    policies: Mapping[str, Policy]
    limits: RouteLimits = NO_LIMITS
    max_body_bytes: int | None = None


def parse_routes(
    raw: Mapping[str, Any],
    *,
    source: str = "routes",
    policy_overrides: Mapping[str, tuple[int, int]] | None = None,
) -> RouteTable:
    """Build a route table from already parsed TOML tables."""
    unknown = sorted(set(raw) - {"policies", "routes", "versions"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; "
            "use policies, routes and versions"
        )
    policies = parse_policies(raw.get("policies"), source, policy_overrides)
    top = _Defaults(policies)
    routes = [
        _parse_route(entry, f"{source}: routes[{index}]", "", None, top)
        for index, entry in enumerate(_list(raw, "routes", source))
    ]
    versions = raw.get("versions", {})
    if not isinstance(versions, Mapping):
        raise ConfigError(f"{source}: versions must be a table, not {versions!r}")
    for name, table in versions.items():
        where = f"{source}: versions.{name}"
        if not _VERSION.match(name) or not isinstance(table, Mapping):
            raise ConfigError(
                f"{where} must be a table named v1, v2, ...; got {name!r} = {table!r}"
            )
        extra = sorted(set(table) - _VERSION_KEYS)
        if extra:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(extra)}; a version has "
                f"{', '.join(sorted(_VERSION_KEYS))}"
            )
        prefix = table.get("prefix", f"/api/{name}")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ConfigError(f"{where}.prefix must be a path like '/api/{name}'")
        defaults = _Defaults(
            policies,
            route_limits(table, NO_LIMITS, policies, where=where, role=None),
            _body_limit(table, None, where),
        )
        routes.extend(
            _parse_route(entry, f"{where}.routes[{index}]", prefix, name, defaults)
            for index, entry in enumerate(_list(table, "routes", where))
        )
    return RouteTable(routes)


def _body_limit(
    table: Mapping[str, Any], default: int | None, where: str
) -> int | None:
    value = table.get("max_body_bytes", default)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < 0
    ):
        raise ConfigError(
            f"{where}.max_body_bytes is {value!r}; use a whole number of bytes"
        )
    return value


def _list(table: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key} must be a list of tables, not {value!r}")
    return value


def _parse_route(
    entry: Any, where: str, prefix: str, version: str | None, defaults: _Defaults
) -> Route:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table, not {entry!r}")
    unknown = sorted(set(entry) - _ROUTE_KEYS - _DEPRECATION_KEYS - _LIMIT_KEYS)
    missing = sorted(_ROUTE_KEYS - set(entry))
    if unknown or missing:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}, missing key(s) {missing}; "
            f"a route has {', '.join(sorted(_ROUTE_KEYS))}, and may have "
            f"{', '.join(sorted(_DEPRECATION_KEYS | _LIMIT_KEYS))}"
        )
    path = entry["path"]
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"{where}.path is {path!r}; a path starts with '/'")
    template = prefix.rstrip("/") + path
    params = _parse_template(template, where)
    methods = entry["methods"]
    if not isinstance(methods, list) or not methods or not set(methods) <= METHODS:
        raise ConfigError(
            f"{where}.methods is {methods!r}; use a non-empty list of "
            f"{', '.join(sorted(METHODS))}"
        )
    service, role = entry["service"], entry["role"]
    if not isinstance(service, str) or not _SERVICE.match(service):
        raise ConfigError(
            f"{where}.service is {service!r}; use a lower-case name like 'users'"
        )
    if role not in ROLES:
        raise ConfigError(f"{where}.role is {role!r}; use one of {', '.join(ROLES)}")
    return Route(
        template,
        frozenset(methods),
        service,
        role,
        version,
        params,
        _deprecation_headers(entry, where),
        route_limits(entry, defaults.limits, defaults.policies, where=where, role=role),
        _body_limit(entry, defaults.max_body_bytes, where),
    )


def _deprecation_headers(
    entry: Mapping[str, Any], where: str
) -> tuple[tuple[bytes, bytes], ...]:
    given = _DEPRECATION_KEYS & set(entry)
    if not given:
        return ()
    if given != _DEPRECATION_KEYS:
        raise ConfigError(
            f"{where}: a deprecated route needs all of deprecated, sunset and "
            f"successor; missing {', '.join(sorted(_DEPRECATION_KEYS - given))}"
        )
    deprecated, sunset = entry["deprecated"], entry["sunset"]
    for key, value in (("deprecated", deprecated), ("sunset", sunset)):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise ConfigError(f"{where}.{key} must be a TOML date like 2027-06-30")
    successor = entry["successor"]
    if not isinstance(successor, str) or not successor.startswith("/"):
        raise ConfigError(f"{where}.successor must be a path like '/api/v2/...'")
    at = dt.datetime.combine(deprecated, dt.time(), dt.UTC)
    end = dt.datetime.combine(sunset, dt.time(), dt.UTC)
    return (
        (b"deprecation", f"@{int(at.timestamp())}".encode()),
        (b"sunset", format_datetime(end, usegmt=True).encode()),
        (b"link", f'<{successor}>; rel="successor-version"'.encode()),
    )


def _parse_template(template: str, where: str) -> tuple[str, ...]:
    params: list[str] = []
    for segment in template[1:].split("/"):
        param = _PARAM.match(segment)
        if param:
            params.append(param.group(1))
        elif segment in _UNSAFE_SEGMENTS or any(c in segment for c in "{}%?#"):
            raise ConfigError(
                f"{where}.path {template!r} has a bad segment {segment!r}; segments "
                "are literal text or {name}, never empty, '.', '..', or with %?#"
            )
    if len(set(params)) != len(params):
        raise ConfigError(f"{where}.path {template!r} repeats a parameter name")
    return tuple(params)
