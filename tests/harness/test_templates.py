"""Filling placeholders in commands, environments and setup steps."""

from __future__ import annotations

import sys

import pytest

from harness.endpoints import Endpoint
from harness.errors import ConfigError
from harness.templates import Context, render

KEY = "components.api.env.DATABASE_URL"

POSTGRES = Endpoint(
    name="postgres",
    kind="postgres",
    host="127.0.0.1",
    replicas=({"postgres": 5432},),
    urls=("postgresql://postgres@127.0.0.1:5432/campus",),
    dsn="postgresql://postgres@127.0.0.1:5432/campus",
)
USERS = Endpoint(
    name="users",
    kind="asgi",
    host="127.0.0.1",
    replicas=({"http": 8001, "admin": 9001}, {"http": 8002, "admin": 9002}),
    urls=("http://127.0.0.1:8001", "http://127.0.0.1:8002"),
    extra={"jwks": "http://127.0.0.1:8001/.well-known/jwks.json"},
)
WORKER = Endpoint(
    name="worker", kind="process", host="127.0.0.1", replicas=({"main": 7000},)
)


def _context() -> Context:
    return Context(
        component="api",
        host="127.0.0.1",
        ports={"http": 8080, "metrics": 9100},
        replica=2,
        workdir="/tmp/stack/api-2",
        endpoints={"postgres": POSTGRES, "users": USERS, "worker": WORKER},
        settings={"secret": "s3cret", "region": "eu"},
    )


def _render(template: str) -> str:
    return render(template, _context(), key=KEY)


def _error(template: str) -> str:
    with pytest.raises(ConfigError) as excinfo:
        _render(template)
    return str(excinfo.value)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{host}", "127.0.0.1"),
        ("{port}", "8080"),
        ("{port.http}", "8080"),
        ("{port.metrics}", "9100"),
        ("{replica}", "2"),
        ("{workdir}/api.sock", "/tmp/stack/api-2/api.sock"),
        ("{python}", sys.executable),
        ("--bind={host}:{port}", "--bind=127.0.0.1:8080"),
        ("{ host }", "127.0.0.1"),
    ],
)
def test_render_own_placeholders(template: str, expected: str) -> None:
    assert _render(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{users.url}", "http://127.0.0.1:8001"),
        ("{users.urls}", "http://127.0.0.1:8001,http://127.0.0.1:8002"),
        ("{postgres.dsn}", "postgresql://postgres@127.0.0.1:5432/campus"),
        ("{postgres.host}", "127.0.0.1"),
        ("{postgres.port}", "5432"),
        ("{users.port}", "8001"),
        ("{users.port.admin}", "9001"),
        ("{users.jwks}", "http://127.0.0.1:8001/.well-known/jwks.json"),
        ("{worker.host}:{worker.port.main}", "127.0.0.1:7000"),
    ],
)
def test_render_dependency_placeholders(template: str, expected: str) -> None:
    assert _render(template) == expected


def test_render_settings() -> None:
    assert _render("--secret={settings.secret} --region={settings.region}") == (
        "--secret=s3cret --region=eu"
    )


def test_render_literal_braces() -> None:
    assert _render('{{"port": {port}, "tags": {{}}}}') == '{"port": 8080, "tags": {}}'


def test_render_without_placeholders_is_unchanged() -> None:
    assert _render("uvicorn --workers 1") == "uvicorn --workers 1"


def test_render_unknown_component_is_named() -> None:
    assert _error("{redis.url}") == (
        f"{KEY}: unknown placeholder {{redis.url}}: 'redis' is not a component of "
        "the stack"
    )


def test_render_unknown_own_placeholder_is_named() -> None:
    assert _error("{hostname}") == (
        f"{KEY}: unknown placeholder {{hostname}}: 'hostname' is not a component "
        "of the stack"
    )


@pytest.mark.parametrize(
    "name",
    [
        "settings.missing",
        "port.grpc",
        "users.port.grpc",
        "users.nothing",
        "worker.url",
        "worker.urls",
        "worker.dsn",
    ],
)
def test_render_unknown_attribute_points_at_the_list(name: str) -> None:
    assert _error(f"--x={{{name}}}") == (
        f"{KEY}: unknown placeholder {{{name}}}: "
        "see the list of placeholders in harness.templates"
    )


def test_render_without_own_ports_has_no_port() -> None:
    context = Context(
        component="job",
        host="127.0.0.1",
        ports={},
        replica=0,
        workdir="/tmp/job",
        endpoints={},
        settings={},
    )

    with pytest.raises(ConfigError) as excinfo:
        render("{port}", context, key="components.job.command[1]")

    assert str(excinfo.value) == (
        "components.job.command[1]: unknown placeholder {port}: "
        "see the list of placeholders in harness.templates"
    )
