"""Finding and reading the ``[tool.harness]`` table of ``pyproject.toml``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import find_config
from harness.errors import ConfigError

WHERE = "[tool.harness]"


@pytest.fixture(autouse=True)
def _no_topology_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_TOPOLOGY", raising=False)


def _project(root: Path, harness_table: str) -> Path:
    """A project folder whose pyproject.toml holds ``harness_table``."""
    root.mkdir(parents=True, exist_ok=True)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        f'[project]\nname = "demo"\n\n[tool.harness]\n{harness_table}',
        encoding="utf-8",
    )
    return pyproject


def _error(start: Path) -> str:
    with pytest.raises(ConfigError) as excinfo:
        find_config(start)
    return str(excinfo.value)


def test_find_config_walks_up_from_a_nested_folder(tmp_path: Path) -> None:
    _project(tmp_path, 'topology = "services/stack.toml"\n')
    nested = tmp_path / "scenarios" / "journeys" / "deep"
    nested.mkdir(parents=True)

    config = find_config(nested)

    assert config.root == tmp_path.resolve()
    assert config.topology_path == tmp_path.resolve() / "services" / "stack.toml"


def test_find_config_skips_a_pyproject_without_harness_table(tmp_path: Path) -> None:
    _project(tmp_path, 'topology = "stack.toml"\n')
    package = tmp_path / "packages" / "tool"
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text('[project]\nname = "tool"\n', "utf-8")

    config = find_config(package)

    assert config.root == tmp_path.resolve()


def test_find_config_takes_the_nearest_harness_table(tmp_path: Path) -> None:
    _project(tmp_path, 'topology = "outer.toml"\n')
    _project(tmp_path / "inner", 'topology = "inner.toml"\n')

    config = find_config(tmp_path / "inner")

    assert config.topology_path == (tmp_path / "inner" / "inner.toml").resolve()


def test_find_config_defaults_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, 'topology = "stack.toml"\n')
    monkeypatch.chdir(tmp_path)

    assert find_config().root == tmp_path.resolve()


def test_find_config_resolves_paths_against_the_pyproject_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(
        tmp_path / "project",
        'topology = "../shared/stack.toml"\nstate_file = "run/state.json"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = find_config(tmp_path / "project")

    assert config.topology_path == (tmp_path / "shared" / "stack.toml").resolve()
    assert config.state_file == (tmp_path / "project" / "run" / "state.json").resolve()


def test_find_config_defaults(tmp_path: Path) -> None:
    _project(tmp_path, 'topology = "stack.toml"\n')

    config = find_config(tmp_path)

    assert config.state_file == tmp_path.resolve() / ".harness" / "stack.json"
    assert config.gateway == "gateway"


def test_find_config_reads_gateway(tmp_path: Path) -> None:
    _project(tmp_path, 'topology = "stack.toml"\ngateway = "edge"\n')

    assert find_config(tmp_path).gateway == "edge"


def test_find_config_environment_overrides_topology(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, 'topology = "stack.toml"\n')
    other = tmp_path / "ci" / "stack-ci.toml"
    monkeypatch.setenv("HARNESS_TOPOLOGY", str(other))

    assert find_config(tmp_path).topology_path == other.resolve()


def test_find_config_environment_relative_to_the_pyproject_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, 'state_file = "state.json"\n')
    monkeypatch.setenv("HARNESS_TOPOLOGY", "ci/stack.toml")

    assert (
        find_config(tmp_path).topology_path
        == (tmp_path / "ci" / "stack.toml").resolve()
    )


def test_harness_config_topology_loads_the_file(tmp_path: Path) -> None:
    _project(tmp_path, 'topology = "stack.toml"\n')
    (tmp_path / "stack.toml").write_text(
        '[stack]\nname = "demo"\n[components.redis]\nkind = "redis"\n', "utf-8"
    )

    topology = find_config(tmp_path).topology()

    assert topology.name == "demo"
    assert list(topology.components) == ["redis"]
    assert topology.source == (tmp_path / "stack.toml").resolve()


def test_find_config_unknown_key(tmp_path: Path) -> None:
    pyproject = _project(tmp_path, 'topology = "stack.toml"\ngatway = "edge"\n')

    assert _error(tmp_path) == (
        f"{pyproject}: {WHERE} has unknown key(s) gatway; "
        "known: topology, state_file, gateway"
    )


@pytest.mark.parametrize(
    ("line", "shown"),
    [("gateway = 3", "3"), ("state_file = false", "False"), ('gateway = ""', "''")],
)
def test_find_config_value_not_a_string(tmp_path: Path, line: str, shown: str) -> None:
    pyproject = _project(tmp_path, f'topology = "stack.toml"\n{line}\n')
    key = line.split(" ")[0]

    assert _error(tmp_path) == (
        f"{pyproject}: {WHERE} {key} must be a non-empty string, not {shown}"
    )


def test_find_config_harness_not_a_table(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool]\nharness = "stack.toml"\n', encoding="utf-8")

    assert _error(tmp_path) == f"{pyproject}: {WHERE} must be a table"


def test_find_config_missing_topology(tmp_path: Path) -> None:
    pyproject = _project(tmp_path, 'gateway = "edge"\n')

    assert _error(tmp_path) == (
        f'{pyproject}: {WHERE} needs topology = "path/to/stack.toml" '
        "(or set HARNESS_TOPOLOGY)"
    )


def test_find_config_invalid_toml(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.harness\ntopology = 'stack.toml'\n", encoding="utf-8")

    message = _error(tmp_path)

    assert message.startswith(f"{pyproject} is not valid TOML: ")
    assert "line 1" in message


def test_find_config_no_config_at_all(tmp_path: Path) -> None:
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)

    assert _error(start) == (
        f"no pyproject.toml with a [tool.harness] table in {start.resolve()} or "
        'above; add one with topology = "path/to/stack.toml", or run from the '
        "project folder"
    )
