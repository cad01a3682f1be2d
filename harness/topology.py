"""The declarative description of a stack: components, how they run, how they are ready.

A topology is usually read from a TOML file (see ``harness.config``)::

    [stack]
    name = "shop"
    settings = { admin_email = "admin@shop.test" }  # {settings.admin_email}
    secrets = ["admin_password"]    # generated at each start: {settings.admin_password}

    [components.api]
    kind = "asgi"                       # process | asgi | postgres | redis | mailsink
    app = "myservice.main:app"
    replicas = 2
    depends_on = ["postgres"]
    env = { DATABASE_URL = "{postgres.dsn}" }
    probe = { http = "/healthz" }

Strings in ``command``, ``env`` and ``setup`` may name endpoints of the
component's dependencies and of the component itself; ``harness.templates``
says which placeholders exist.
"""

from __future__ import annotations

import graphlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError

KINDS = ("process", "asgi", "postgres", "redis", "mailsink")
DEFAULT_PORTS = {
    "process": ("main",),
    "asgi": ("http",),
    "postgres": ("postgres",),
    "redis": ("redis",),
    "mailsink": ("smtp", "http"),
}
SINGLETON_KINDS = ("postgres", "redis", "mailsink")
COMPONENT_KEYS = (
    "kind", "command", "app", "image", "env", "ports", "depends_on", "replicas",
    "probe", "setup", "options", "start_timeout_s",
)  # fmt: skip
PROBE_KEYS = ("tcp", "http", "command", "port", "attempt_timeout_s")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

ProbeKind = Literal["tcp", "http", "command"]


@dataclass(frozen=True)
class Probe:
    """How to tell that one replica is ready.

    ``tcp`` connects to the named port; ``http`` expects a 2xx from ``path`` on
    the named port; ``command`` expects exit status 0 (templates allowed).
    """

    kind: ProbeKind
    port: str | None = None
    path: str = "/"
    command: tuple[str, ...] = ()
    attempt_timeout_s: float = 1.0

    def describe(self) -> str:
        if self.kind == "tcp":
            return f"TCP connect to port {self.port!r}"
        if self.kind == "http":
            return f"HTTP 2xx from GET {self.path} on port {self.port!r}"
        return f"command {' '.join(self.command)!r} exiting 0"


@dataclass(frozen=True)
class Component:
    """One part of the stack; see the module docstring for the TOML form."""

    name: str
    kind: str
    command: tuple[str, ...] = ()
    app: str | None = None
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[str, ...] = ("main",)
    depends_on: tuple[str, ...] = ()
    replicas: int = 1
    probe: Probe | None = None
    setup: tuple[tuple[str, ...], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    start_timeout_s: float = 30.0


@dataclass(frozen=True)
class Topology:
    """A named set of components, ordered so that dependencies come first."""

    name: str
    components: Mapping[str, Component]
    source: Path | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.start_order()  # reject unknown dependencies and cycles early

    def __getitem__(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            known = ", ".join(self.components) or "none"
            raise ConfigError(
                f"the topology has no component {name!r} (it has: {known})"
            ) from None

    def start_order(self) -> list[str]:
        """Component names in an order where every dependency comes first."""
        graph: dict[str, list[str]] = {}
        for component in self.components.values():
            for dependency in component.depends_on:
                if dependency not in self.components:
                    raise ConfigError(
                        f"{self._where()}components.{component.name}.depends_on "
                        f"names {dependency!r}, which is not a component"
                    )
            graph[component.name] = list(component.depends_on)
        try:
            return list(graph and graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ConfigError(
                f"{self._where()}components depend on each other in a cycle: {cycle}"
            ) from exc

    def only(self, names: Iterable[str]) -> Topology:
        """The part of the topology that ``names`` need: them and their dependencies."""
        wanted: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(self[name].depends_on)
        kept = {n: c for n, c in self.components.items() if n in wanted}
        return Topology(self.name, kept, self.source, self.settings, self.secrets)

    def _where(self) -> str:
        return f"{self.source}: " if self.source else ""


def load_topology(path: Path) -> Topology:
    """Read and validate a topology TOML file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"topology file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"topology file {path} is not valid TOML: {exc}") from exc
    return parse_topology(raw, source=path)


def parse_topology(raw: Mapping[str, Any], *, source: Path | None = None) -> Topology:
    """Build a topology from the already-parsed TOML tables."""
    where = f"{source}: " if source else ""
    reader = _Reader(where)
    reader.only_known(raw, "top level", ("stack", "components"))
    stack = reader.table(raw, "stack", required=False)
    reader.only_known(stack, "stack", ("name", "settings", "secrets"))
    name = reader.string(stack, "stack.name", default="stack")
    raw_settings = reader.table(stack, "stack.settings", required=False)
    settings = {
        key: reader.string(raw_settings, f"stack.settings.{key}", field=key)
        for key in raw_settings
    }
    secrets = tuple(reader.strings(stack, "stack.secrets"))
    clashes = sorted(set(secrets) & set(settings))
    if clashes:
        raise ConfigError(
            f"{where}stack.secrets names {', '.join(clashes)}, which stack.settings "
            "also sets; a secret is generated at every start, so drop one of them"
        )
    tables = reader.table(raw, "components", required=True)
    if not tables:
        raise ConfigError(f"{where}[components] is empty: declare at least one")
    components = {
        key: _parse_component(
            reader, key, reader.table(tables, f"components.{key}", field=key)
        )
        for key in tables
    }
    return Topology(name, components, source, settings, secrets)


def _parse_component(reader: _Reader, name: str, table: Mapping[str, Any]) -> Component:
    key = f"components.{name}"
    if not _NAME.match(name):
        raise ConfigError(
            f"{reader.where}{key}: component names are lower case letters, digits, "
            "'-' and '_', starting with a letter"
        )
    reader.only_known(table, key, COMPONENT_KEYS)
    kind = reader.string(table, f"{key}.kind", default="process")
    if kind not in KINDS:
        raise ConfigError(
            f"{reader.where}{key}.kind is {kind!r}; use one of {', '.join(KINDS)}"
        )
    command = reader.argv(table, f"{key}.command")
    app = reader.optional_string(table, f"{key}.app")
    if kind == "process" and not command:
        raise ConfigError(f"{reader.where}{key}.command is required for kind 'process'")
    if kind == "asgi" and not app:
        raise ConfigError(
            f"{reader.where}{key}.app is required for kind 'asgi' "
            '("module:attribute")'
        )
    replicas = reader.integer(table, f"{key}.replicas", default=1)
    if replicas < 1 or (kind in SINGLETON_KINDS and replicas != 1):
        allowed = "1" if kind in SINGLETON_KINDS else "1 or more"
        raise ConfigError(
            f"{reader.where}{key}.replicas is {replicas}; "
            f"kind {kind!r} allows {allowed}"
        )
    ports = tuple(reader.strings(table, f"{key}.ports")) or DEFAULT_PORTS[kind]
    env = reader.table(table, f"{key}.env", required=False)
    timeout_s = reader.number(table, f"{key}.start_timeout_s", default=30.0)
    if timeout_s <= 0:
        raise ConfigError(f"{reader.where}{key}.start_timeout_s must be positive")
    return Component(
        name=name,
        kind=kind,
        command=tuple(command),
        app=app,
        image=reader.optional_string(table, f"{key}.image"),
        env={k: reader.string(env, f"{key}.env.{k}", field=k) for k, _ in env.items()},
        ports=ports,
        depends_on=tuple(reader.strings(table, f"{key}.depends_on")),
        replicas=replicas,
        probe=_parse_probe(reader, table.get("probe"), f"{key}.probe", ports),
        setup=tuple(
            tuple(reader.argv({"step": step}, f"{key}.setup[{index}]", field="step"))
            for index, step in enumerate(reader.sequence(table, f"{key}.setup"))
        ),
        options=reader.table(table, f"{key}.options", required=False),
        start_timeout_s=timeout_s,
    )


def _parse_probe(
    reader: _Reader, raw: Any, key: str, ports: tuple[str, ...]
) -> Probe | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f'{reader.where}{key} must be a table, e.g. {{ tcp = "http" }}'
        )
    reader.only_known(raw, key, PROBE_KEYS)
    kinds = [k for k in ("tcp", "http", "command") if k in raw]
    if len(kinds) != 1:
        raise ConfigError(
            f"{reader.where}{key} needs exactly one of tcp, http or command; "
            'e.g. { http = "/healthz" } or { tcp = "http" }'
        )
    attempt_s = reader.number(raw, f"{key}.attempt_timeout_s", default=1.0)
    port = reader.optional_string(raw, f"{key}.port") or ports[0]
    if kinds[0] == "tcp":
        port = reader.string(raw, f"{key}.tcp")
    if port not in ports:
        raise ConfigError(
            f"{reader.where}{key} probes port {port!r}, which is not one of the "
            f"component's ports ({', '.join(ports)})"
        )
    if kinds[0] == "command":
        command: tuple[str, ...] = tuple(
            reader.argv(raw, f"{key}.command", field="command")
        )
        return Probe("command", command=command, attempt_timeout_s=attempt_s)
    if kinds[0] == "http":
        path = reader.string(raw, f"{key}.http")
        return Probe("http", port=port, path=path, attempt_timeout_s=attempt_s)
    return Probe("tcp", port=port, attempt_timeout_s=attempt_s)


class _Reader:
    """Typed access to TOML tables, with errors that name the offending key."""

    def __init__(self, where: str) -> None:
        self.where = where

    def only_known(
        self, raw: Mapping[str, Any], key: str, known: Iterable[str]
    ) -> None:
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(
                f"{self.where}{key} has unknown key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )

    def _fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.where}{key} must be {expected}, not {value!r}")

    def table(
        self,
        raw: Mapping[str, Any],
        key: str,
        *,
        required: bool = True,
        field: str | None = None,
    ) -> dict[str, Any]:
        value = raw.get(field or key.rsplit(".", 1)[-1], None if required else {})
        if value is None:
            raise ConfigError(f"{self.where}[{key}] is missing")
        if not isinstance(value, Mapping):
            raise self._fail(key, "a table", value)
        return dict(value)

    def string(
        self,
        raw: Mapping[str, Any],
        key: str,
        default: str | None = None,
        *,
        field: str | None = None,
    ) -> str:
        value = raw.get(field or key.rsplit(".", 1)[-1], default)
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def optional_string(self, raw: Mapping[str, Any], key: str) -> str | None:
        if raw.get(key.rsplit(".", 1)[-1]) is None:
            return None
        return self.string(raw, key)

    def integer(self, raw: Mapping[str, Any], key: str, default: int) -> int:
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(key, "an integer", value)
        return value

    def number(self, raw: Mapping[str, Any], key: str, default: float) -> float:
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._fail(key, "a number", value)
        return float(value)

    def sequence(self, raw: Mapping[str, Any], key: str) -> list[Any]:
        value = raw.get(key.rsplit(".", 1)[-1], [])
        if not isinstance(value, list):
            raise self._fail(key, "a list", value)
        return value

    def strings(self, raw: Mapping[str, Any], key: str) -> list[str]:
        values = self.sequence(raw, key)
        if not all(isinstance(v, str) for v in values):
            raise self._fail(key, "a list of strings", values)
        return values

    def argv(
        self, raw: Mapping[str, Any], key: str, field: str | None = None
    ) -> list[str]:
        value = raw.get(field or key.rsplit(".", 1)[-1], [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, 'a list of arguments, e.g. ["prog", "--flag"]', value)
        return value
