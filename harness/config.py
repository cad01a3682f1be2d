"""The harness's configuration: the ``[tool.harness]`` table of ``pyproject.toml``.

::

    [tool.harness]
    topology = "services/stack.toml"   # required, relative to pyproject.toml
    state_file = ".harness/stack.json" # where `up` writes the endpoints
    gateway = "gateway"                # the component the `http` fixture talks to

``HARNESS_TOPOLOGY`` in the environment overrides ``topology``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.topology import Topology, load_topology

KEYS = ("topology", "state_file", "gateway")


@dataclass(frozen=True)
class HarnessConfig:
    root: Path
    topology_path: Path
    state_file: Path
    gateway: str = "gateway"

    def topology(self) -> Topology:
        return load_topology(self.topology_path)


def find_config(start: Path | None = None) -> HarnessConfig:
    """The nearest ``pyproject.toml`` with ``[tool.harness]``, from ``start`` up."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if not pyproject.is_file():
            continue
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{pyproject} is not valid TOML: {exc}") from exc
        tool = data.get("tool")
        table = tool.get("harness") if isinstance(tool, dict) else None
        if table is not None:
            return _parse(pyproject, table)
    raise ConfigError(
        f"no pyproject.toml with a [tool.harness] table in {start} or above; add one "
        'with topology = "path/to/stack.toml", or run from the project folder'
    )


def _parse(pyproject: Path, table: Any) -> HarnessConfig:
    where = f"{pyproject}: [tool.harness]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}"
        )
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"{where} {key} must be a non-empty string, not {value!r}"
            )
    root = pyproject.parent
    topology = os.environ.get("HARNESS_TOPOLOGY") or table.get("topology")
    if not topology:
        raise ConfigError(
            f'{where} needs topology = "path/to/stack.toml" (or set HARNESS_TOPOLOGY)'
        )
    return HarnessConfig(
        root=root,
        topology_path=(root / topology).resolve(),
        state_file=(root / table.get("state_file", ".harness/stack.json")).resolve(),
        gateway=table.get("gateway", "gateway"),
    )
