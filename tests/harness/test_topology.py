"""Reading and validating topologies: defaults, ordering, and errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.topology import Probe, Topology, load_topology, parse_topology

KNOWN_KEYS = (
    "app, command, depends_on, env, image, kind, options, ports, probe, replicas, "
    "setup, start_timeout_s"
)


def _one(kind: str, **table: Any) -> dict[str, Any]:
    """A topology of one component ``c`` of ``kind`` with the given keys."""
    return {"components": {"c": {"kind": kind, **table}}}


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as excinfo:
        parse_topology(raw)
    return str(excinfo.value)


# -- defaults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "table", "ports"),
    [
        ("process", {"command": ["worker"]}, ("main",)),
        ("asgi", {"app": "api.main:app"}, ("http",)),
        ("postgres", {}, ("postgres",)),
        ("redis", {}, ("redis",)),
        ("mailsink", {}, ("smtp", "http")),
    ],
)
def test_parse_topology_defaults_per_kind(
    kind: str, table: dict[str, Any], ports: tuple[str, ...]
) -> None:
    component = parse_topology(_one(kind, **table))["c"]

    assert component.kind == kind
    assert component.ports == ports
    assert component.probe is None
    assert component.replicas == 1
    assert component.depends_on == ()
    assert component.env == {}
    assert component.setup == ()
    assert component.start_timeout_s == 30.0


def test_parse_topology_kind_defaults_to_process() -> None:
    topology = parse_topology({"components": {"worker": {"command": ["run"]}}})

    assert topology["worker"].kind == "process"
    assert topology["worker"].command == ("run",)
    assert topology.name == "stack"
    assert topology.settings == {}
    assert topology.source is None


def test_parse_topology_reads_every_key() -> None:
    raw = {
        "stack": {"name": "campus", "settings": {"secret": "s3cret"}},
        "components": {
            "postgres": {"kind": "postgres", "options": {"database": "campus"}},
            "api": {
                "kind": "asgi",
                "app": "api.main:app",
                "image": "api:latest",
                "env": {"DATABASE_URL": "{postgres.dsn}"},
                "ports": ["http", "admin"],
                "depends_on": ["postgres"],
                "replicas": 3,
                "probe": {"http": "/healthz", "port": "admin", "attempt_timeout_s": 2},
                "setup": [["alembic", "upgrade", "head"], ["seed"]],
                "start_timeout_s": 12,
            },
        },
    }

    topology = parse_topology(raw)

    assert topology.name == "campus"
    assert topology.settings == {"secret": "s3cret"}
    assert topology["postgres"].options == {"database": "campus"}
    api = topology["api"]
    assert api.app == "api.main:app"
    assert api.image == "api:latest"
    assert api.env == {"DATABASE_URL": "{postgres.dsn}"}
    assert api.ports == ("http", "admin")
    assert api.depends_on == ("postgres",)
    assert api.replicas == 3
    assert api.probe == Probe(
        "http", port="admin", path="/healthz", attempt_timeout_s=2.0
    )
    assert api.setup == (("alembic", "upgrade", "head"), ("seed",))
    assert api.start_timeout_s == 12.0


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"http": "/healthz"}, Probe("http", port="http", path="/healthz")),
        ({"tcp": "admin"}, Probe("tcp", port="admin")),
        (
            {"command": ["check", "{port}"], "attempt_timeout_s": 0.5},
            Probe("command", command=("check", "{port}"), attempt_timeout_s=0.5),
        ),
    ],
)
def test_parse_topology_probe_kinds(probe: dict[str, Any], expected: Probe) -> None:
    raw = _one("asgi", app="m:app", ports=["http", "admin"], probe=probe)

    assert parse_topology(raw)["c"].probe == expected


@pytest.mark.parametrize(
    ("probe", "description"),
    [
        (Probe("tcp", port="redis"), "TCP connect to port 'redis'"),
        (
            Probe("http", port="http", path="/ready"),
            "HTTP 2xx from GET /ready on port 'http'",
        ),
        (
            Probe("command", command=("pg_isready", "-q")),
            "command 'pg_isready -q' exiting 0",
        ),
    ],
)
def test_probe_describe_says_what_is_awaited(probe: Probe, description: str) -> None:
    assert probe.describe() == description


# -- validation ----------------------------------------------------------------


def test_parse_topology_unknown_key_lists_known_keys() -> None:
    message = _error(_one("process", command=["run"], replica=2, colour="red"))

    assert message == (
        f"components.c has unknown key(s) colour, replica; known keys: {KNOWN_KEYS}"
    )


def test_parse_topology_bad_kind() -> None:
    assert _error(_one("lambda")) == (
        "components.c.kind is 'lambda'; use one of process, asgi, postgres, redis, mailsink"
    )


def test_parse_topology_process_without_command() -> None:
    assert _error(_one("process")) == (
        "components.c.command is required for kind 'process'"
    )


def test_parse_topology_asgi_without_app() -> None:
    assert _error(_one("asgi")) == (
        "components.c.app is required for kind 'asgi' (\"module:attribute\")"
    )


def test_parse_topology_zero_replicas() -> None:
    assert _error(_one("asgi", app="m:app", replicas=0)) == (
        "components.c.replicas is 0; kind 'asgi' allows 1 or more"
    )


@pytest.mark.parametrize("kind", ["postgres", "redis", "mailsink"])
def test_parse_topology_two_replicas_of_a_singleton(kind: str) -> None:
    assert _error(_one(kind, replicas=2)) == (
        f"components.c.replicas is 2; kind {kind!r} allows 1"
    )


def test_parse_topology_non_positive_start_timeout() -> None:
    assert _error(_one("redis", start_timeout_s=0)) == (
        "components.c.start_timeout_s must be positive"
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": 3}, "components.c.kind must be a string, not 3"),
        (
            {"command": "run --fast"},
            "components.c.command must be a list of arguments, "
            'e.g. ["prog", "--flag"], not \'run --fast\'',
        ),
        (
            {"command": ["run", 1]},
            "components.c.command must be a list of arguments, "
            'e.g. ["prog", "--flag"], not [\'run\', 1]',
        ),
        ({"kind": "asgi", "app": 1}, "components.c.app must be a string, not 1"),
        (
            {"kind": "redis", "replicas": "2"},
            "components.c.replicas must be an integer, not '2'",
        ),
        (
            {"kind": "redis", "replicas": True},
            "components.c.replicas must be an integer, not True",
        ),
        (
            {"kind": "redis", "start_timeout_s": "10s"},
            "components.c.start_timeout_s must be a number, not '10s'",
        ),
        (
            {"kind": "redis", "ports": "redis"},
            "components.c.ports must be a list, not 'redis'",
        ),
        (
            {"kind": "redis", "ports": [6379]},
            "components.c.ports must be a list of strings, not [6379]",
        ),
        (
            {"kind": "redis", "depends_on": "postgres"},
            "components.c.depends_on must be a list, not 'postgres'",
        ),
        (
            {"kind": "redis", "env": ["A=1"]},
            "components.c.env must be a table, not ['A=1']",
        ),
        (
            {"kind": "redis", "env": {"PORT": 1}},
            "components.c.env.PORT must be a string, not 1",
        ),
        (
            {"kind": "redis", "options": "fast"},
            "components.c.options must be a table, not 'fast'",
        ),
        (
            {"kind": "redis", "setup": [["ok"], "not a list"]},
            "components.c.setup[1] must be a list of arguments, "
            'e.g. ["prog", "--flag"], not \'not a list\'',
        ),
        (
            {"kind": "redis", "probe": {"tcp": "redis", "attempt_timeout_s": "1s"}},
            "components.c.probe.attempt_timeout_s must be a number, not '1s'",
        ),
    ],
)
def test_parse_topology_wrong_type_names_the_key(
    table: dict[str, Any], message: str
) -> None:
    assert _error({"components": {"c": table}}) == message


def test_parse_topology_component_not_a_table() -> None:
    assert _error({"components": {"c": "redis"}}) == (
        "components.c must be a table, not 'redis'"
    )


def test_parse_topology_stack_setting_not_a_string() -> None:
    raw = {"stack": {"settings": {"workers": 2}}, **_one("redis")}

    assert _error(raw) == "stack.settings.workers must be a string, not 2"


def test_parse_topology_stack_name_not_a_string() -> None:
    assert _error({"stack": {"name": 1}, **_one("redis")}) == (
        "stack.name must be a string, not 1"
    )


def test_parse_topology_probe_not_a_table() -> None:
    assert _error(_one("redis", probe="tcp")) == (
        'components.c.probe must be a table, e.g. { tcp = "http" }'
    )


@pytest.mark.parametrize(
    "probe", [{"tcp": "http", "http": "/healthz"}, {}], ids=["two", "none"]
)
def test_parse_topology_probe_needs_exactly_one_kind(probe: dict[str, Any]) -> None:
    assert _error(_one("asgi", app="m:app", probe=probe)) == (
        "components.c.probe needs exactly one of tcp, http or command; "
        'e.g. { http = "/healthz" } or { tcp = "http" }'
    )


@pytest.mark.parametrize(
    "probe",
    [{"tcp": "admin"}, {"http": "/healthz", "port": "admin"}],
    ids=["tcp", "http"],
)
def test_parse_topology_probe_names_unknown_port(probe: dict[str, Any]) -> None:
    assert _error(_one("asgi", app="m:app", probe=probe)) == (
        "components.c.probe probes port 'admin', which is not one of the "
        "component's ports (http)"
    )


def test_parse_topology_dependency_on_unknown_component() -> None:
    raw = {
        "components": {"api": {"kind": "asgi", "app": "m:app", "depends_on": ["db"]}}
    }

    assert _error(raw) == (
        "components.api.depends_on names 'db', which is not a component"
    )


def test_parse_topology_cycle_names_the_components() -> None:
    raw = {
        "components": {
            "a": {"command": ["a"], "depends_on": ["b"]},
            "b": {"command": ["b"], "depends_on": ["c"]},
            "c": {"command": ["c"], "depends_on": ["a"]},
        }
    }

    message = _error(raw)

    assert message.startswith("components depend on each other in a cycle: ")
    cycle = message.removeprefix("components depend on each other in a cycle: ")
    steps = cycle.split(" -> ")
    assert steps[0] == steps[-1]
    assert sorted(steps[:-1]) == ["a", "b", "c"]


def test_parse_topology_component_depending_on_itself() -> None:
    raw = {"components": {"a": {"command": ["a"], "depends_on": ["a"]}}}

    assert _error(raw) == "components depend on each other in a cycle: a -> a"


@pytest.mark.parametrize("name", ["Api", "1api", "api!", "_api"])
def test_parse_topology_bad_component_name(name: str) -> None:
    raw = {"components": {name: {"kind": "redis"}}}

    assert _error(raw) == (
        f"components.{name}: component names are lower case letters, digits, "
        "'-' and '_', starting with a letter"
    )


def test_parse_topology_dotted_component_name() -> None:
    assert _error({"components": {"a.b": {"kind": "redis"}}}) == (
        "components.a.b: component names are lower case letters, digits, "
        "'-' and '_', starting with a letter"
    )


def test_parse_topology_empty_components() -> None:
    assert _error({"components": {}}) == ("[components] is empty: declare at least one")


def test_parse_topology_missing_components() -> None:
    assert _error({"stack": {"name": "campus"}}) == "[components] is missing"


# -- files ---------------------------------------------------------------------


def test_load_topology_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(
        '[stack]\nname = "campus"\n\n'
        '[components.redis]\nkind = "redis"\n\n'
        '[components.api]\nkind = "asgi"\napp = "api:app"\ndepends_on = ["redis"]\n'
        'probe = { http = "/healthz" }\n',
        encoding="utf-8",
    )

    topology = load_topology(path)

    assert topology.name == "campus"
    assert topology.source == path
    assert topology.start_order() == ["redis", "api"]
    assert topology["api"].probe == Probe("http", port="http", path="/healthz")


def test_load_topology_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text('[components.api]\nkind = "asgi"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as excinfo:
        load_topology(path)

    assert str(excinfo.value) == (
        f"{path}: components.api.app is required for kind 'asgi' (\"module:attribute\")"
    )


def test_load_topology_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text("[components.api\nkind = 'asgi'\n", encoding="utf-8")

    with pytest.raises(ConfigError) as excinfo:
        load_topology(path)

    assert str(excinfo.value).startswith(f"topology file {path} is not valid TOML: ")
    assert "line 1" in str(excinfo.value)


def test_load_topology_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError) as excinfo:
        load_topology(path)

    assert str(excinfo.value) == f"topology file {path} does not exist"


# -- the Topology object ---------------------------------------------------------


def _campus() -> Topology:
    return parse_topology(
        {
            "components": {
                "gateway": {
                    "kind": "asgi",
                    "app": "g:app",
                    "depends_on": ["users", "redis"],
                },
                "users": {"kind": "asgi", "app": "u:app", "depends_on": ["postgres"]},
                "mail": {"kind": "mailsink"},
                "redis": {"kind": "redis"},
                "postgres": {"kind": "postgres"},
            }
        }
    )


def test_topology_start_order_puts_dependencies_first() -> None:
    order = _campus().start_order()

    assert sorted(order) == ["gateway", "mail", "postgres", "redis", "users"]
    assert order.index("postgres") < order.index("users") < order.index("gateway")
    assert order.index("redis") < order.index("gateway")


def test_topology_only_keeps_dependencies_transitively() -> None:
    topology = _campus()

    part = topology.only(["gateway"])

    assert set(part.components) == {"gateway", "users", "postgres", "redis"}
    assert part.name == topology.name
    assert part["users"] is topology["users"]


def test_topology_only_a_leaf_keeps_just_it() -> None:
    assert list(_campus().only(["mail"]).components) == ["mail"]


def test_topology_only_unknown_component() -> None:
    with pytest.raises(ConfigError) as excinfo:
        _campus().only(["search"])

    assert str(excinfo.value) == (
        "the topology has no component 'search' "
        "(it has: gateway, users, mail, redis, postgres)"
    )


def test_topology_getitem_missing_lists_known_components() -> None:
    topology = parse_topology({"components": {"redis": {"kind": "redis"}}})

    with pytest.raises(ConfigError) as excinfo:
        topology["missing"]

    assert str(excinfo.value) == (
        "the topology has no component 'missing' (it has: redis)"
    )


def test_parse_topology_names_with_a_dot() -> None:
    raw = {"stack": {"settings": {"log.level": "debug"}}, **_one("redis")}
    raw["components"]["c"]["env"] = {"app.mode": "test"}

    topology = parse_topology(raw)

    assert topology.settings == {"log.level": "debug"}
    assert topology["c"].env == {"app.mode": "test"}


def test_parse_topology_reads_secrets() -> None:
    raw = {"stack": {"secrets": ["jwt_key", "admin_password"]}, **_one("redis")}

    topology = parse_topology(raw)

    assert topology.secrets == ("jwt_key", "admin_password")
    assert topology.only(["c"]).secrets == ("jwt_key", "admin_password")


def test_parse_topology_secret_also_set_as_a_setting() -> None:
    raw = {
        "stack": {
            "settings": {"jwt_key": "fixed", "region": "eu"},
            "secrets": ["jwt_key"],
        },
        **_one("redis"),
    }

    assert _error(raw) == (
        "stack.secrets names jwt_key, which stack.settings also sets; "
        "a secret is generated at every start, so drop one of them"
    )


def test_parse_topology_secrets_not_a_list_of_strings() -> None:
    raw = {"stack": {"secrets": "jwt_key"}, **_one("redis")}

    assert _error(raw) == "stack.secrets must be a list, not 'jwt_key'"
