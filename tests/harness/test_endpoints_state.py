"""Endpoints as plain data, and the state file that outlives the process that wrote it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.endpoints import Endpoint, Endpoints
from harness.errors import ConfigError, StateError
from harness.processes import ManagedProcess, spawn, stop_all
from harness.state import StackState

GATEWAY = Endpoint(
    name="gateway",
    kind="asgi",
    host="127.0.0.1",
    replicas=({"http": 8001, "metrics": 9001}, {"http": 8002, "metrics": 9002}),
    urls=("http://127.0.0.1:8001", "http://127.0.0.1:8002"),
    extra={"openapi": "/openapi.json"},
)
POSTGRES = Endpoint(
    name="postgres",
    kind="postgres",
    host="127.0.0.1",
    replicas=({"postgres": 5432},),
    dsn="postgresql://postgres@127.0.0.1:5432/campus",
)
REDIS = Endpoint(
    name="redis", kind="redis", host="127.0.0.1", replicas=({"redis": 6379},)
)


def _endpoints() -> Endpoints:
    return Endpoints(
        {"gateway": GATEWAY, "postgres": POSTGRES, "redis": REDIS},
        {"secret": "s3cret"},
    )


def _state(**backend_state: object) -> StackState:
    return StackState(
        name="campus",
        backend="local",
        endpoints=_endpoints(),
        workdir=Path("/tmp/campus-stack"),
        owner_pid=4242,
        created_at="2026-12-03T19:00:00+00:00",
        backend_state=dict(backend_state),
    )


def _load_error(path: Path) -> str:
    with pytest.raises(StateError) as excinfo:
        StackState.load(path)
    return str(excinfo.value)


# -- endpoints -----------------------------------------------------------------


def test_endpoint_json_round_trip() -> None:
    for endpoint in (GATEWAY, POSTGRES, REDIS):
        data = json.loads(json.dumps(endpoint.to_json()))

        assert Endpoint.from_json(data) == endpoint


def test_endpoint_properties_come_from_the_first_replica() -> None:
    assert GATEWAY.ports == {"http": 8001, "metrics": 9001}
    assert GATEWAY.port == 8001
    assert GATEWAY.url == "http://127.0.0.1:8001"


def test_endpoint_url_without_urls_names_the_component() -> None:
    with pytest.raises(ConfigError) as excinfo:
        _ = POSTGRES.url

    assert str(excinfo.value) == "component 'postgres' (postgres) has no URL"


def test_endpoints_json_round_trip() -> None:
    data = json.loads(json.dumps(_endpoints().to_json()))

    endpoints = Endpoints.from_json(data)

    assert dict(endpoints) == {"gateway": GATEWAY, "postgres": POSTGRES, "redis": REDIS}
    assert endpoints.settings == {"secret": "s3cret"}
    assert endpoints.to_json() == data


def test_endpoints_mapping_access() -> None:
    endpoints = _endpoints()

    assert endpoints["redis"] is REDIS
    assert list(endpoints) == ["gateway", "postgres", "redis"]
    assert len(endpoints) == 3
    assert "redis" in endpoints
    assert "mail" not in endpoints
    assert repr(endpoints) == "Endpoints(gateway, postgres, redis)"


def test_endpoints_missing_lists_known_components() -> None:
    with pytest.raises(KeyError) as excinfo:
        _endpoints()["mail"]

    assert excinfo.value.args[0] == (
        "the stack has no component 'mail' (it has: gateway, postgres, redis)"
    )


def test_endpoints_of_kind() -> None:
    endpoints = _endpoints()

    assert endpoints.of_kind("asgi") == [GATEWAY]
    assert endpoints.of_kind("postgres") == [POSTGRES]
    assert endpoints.of_kind("mailsink") == []


def test_endpoints_from_json_without_components() -> None:
    with pytest.raises(ConfigError) as excinfo:
        Endpoints.from_json({"gateway": GATEWAY.to_json()})

    assert str(excinfo.value) == "endpoints data has no 'components' table"


# -- state files -----------------------------------------------------------------


def test_stack_state_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "stack.json"
    state = _state(processes=[], network="campus-net")

    state.save(path)
    loaded = StackState.load(path)

    assert loaded.to_json() == state.to_json()
    assert loaded.workdir == Path("/tmp/campus-stack")
    assert loaded.endpoints["gateway"] == GATEWAY
    assert loaded.backend_state == {"processes": [], "network": "campus-net"}


def test_stack_state_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text("old content", encoding="utf-8")

    _state().save(path)

    assert [p.name for p in tmp_path.iterdir()] == ["stack.json"]
    assert json.loads(path.read_text(encoding="utf-8"))["name"] == "campus"


def test_stack_state_needs_only_endpoints(tmp_path: Path) -> None:
    path = tmp_path / "by-hand.json"
    path.write_text(json.dumps({"endpoints": {"components": {}}}), encoding="utf-8")

    state = StackState.load(path)

    assert state.name == "stack"
    assert state.backend == "external"
    assert state.workdir is None
    assert len(state.endpoints) == 0
    assert state.processes == []
    assert not state.alive()


def test_stack_state_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"

    assert _load_error(path) == (
        f"no stack state at {path}: start one with `python -m harness up --detach`"
    )


def test_stack_state_load_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text('{"endpoints": ', encoding="utf-8")

    message = _load_error(path)

    assert message.startswith(f"{path} is not valid JSON: ")
    assert "line 1" in message


@pytest.mark.parametrize("data", [{"name": "campus"}, ["endpoints"], "endpoints"])
def test_stack_state_load_json_without_endpoints(tmp_path: Path, data: object) -> None:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    assert _load_error(path) == (
        f"{path} has no 'endpoints' object; is it a harness state file?"
    )


def test_stack_state_load_malformed_endpoints(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"endpoints": {"components": {"x": {}}}}), "utf-8")

    assert _load_error(path) == f"{path}: malformed endpoints (KeyError('name'))"


def test_stack_state_alive_false_when_pids_are_dead(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=10)
    dead = ManagedProcess(
        component="worker",
        replica=0,
        argv=["worker"],
        pid=gone.pid,
        log_path=tmp_path / "worker.log",
        started_at=12345,
    )

    state = _state(processes=[dead.to_json()])

    assert not state.alive()


def test_stack_state_alive_false_when_a_pid_was_reused(tmp_path: Path) -> None:
    impostor = ManagedProcess(
        component="worker",
        replica=0,
        argv=["worker"],
        pid=os.getpid(),
        log_path=tmp_path / "worker.log",
        started_at=0,
    )

    assert not _state(processes=[impostor.to_json()]).alive()


def test_stack_state_alive_while_a_process_runs(tmp_path: Path) -> None:
    process = spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        component="worker",
        replica=0,
        env={},
        log_path=tmp_path / "worker.log",
    )
    try:
        state = _state(processes=[process.to_json()])
        assert state.alive()

        stop_all([process], timeout_s=5.0)

        assert not state.alive()
    finally:
        assert process.popen is not None
        process.popen.kill()
        process.popen.wait(timeout=10)
