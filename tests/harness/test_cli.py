"""``python -m harness`` from a shell: up, status, logs, down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.state import StackState, claim

TOPOLOGY = """
[stack]
name = "cli-test"

[components.redis]
kind = "redis"

[components.web]
command = ["{python}", "-u", "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
ports = ["http"]
replicas = 2
depends_on = ["redis"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.harness]\ntopology = "stack.toml"\n'
    )
    (tmp_path / "stack.toml").write_text(TOPOLOGY)
    return tmp_path


def harness(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_up_detach_status_logs_down(project: Path) -> None:
    up = harness(project, "up", "--detach")
    try:
        assert up.returncode == 0, up.stderr
        lines = up.stdout.splitlines()
        assert lines[0] == f"starting 'cli-test' from {project / 'stack.toml'}"
        assert lines[1].startswith("  redis            ready in ")
        assert lines[2].startswith("  web x2           ready in ")
        state_file = project / ".harness" / "stack.json"
        assert lines[3].endswith(f"endpoints in {state_file}")
        state = StackState.load(state_file)
        assert all(p.alive() for p in state.processes)

        status = harness(project, "status")
        assert status.returncode == 0, status.stderr
        assert "  web              2/2 running  http://127.0.0.1:" in status.stdout

        again = harness(project, "up", "--detach")
        assert again.returncode == 1
        assert "harness: error: a stack is already running" in again.stderr
        assert "stop it with `python -m harness down`" in again.stderr

        for url in state.endpoints["web"].urls:
            httpx.get(url + "/cli-probe")
        logs = harness(project, "logs", "web")
        assert logs.returncode == 0
        assert "web-0 | " in logs.stdout
        assert "web-1 | " in logs.stdout
        assert logs.stdout.count("GET /cli-probe") == 2
    finally:
        down = harness(project, "down")

    assert down.returncode == 0, down.stderr
    assert down.stdout.startswith("stopped 'cli-test' and removed ")
    assert not any(p.alive() for p in state.processes)
    assert state.workdir is not None
    assert not state.workdir.exists()
    assert not state_file.exists()


def test_status_and_down_without_a_stack(project: Path) -> None:
    status = harness(project, "status")
    down = harness(project, "down")

    assert status.returncode == 3
    assert "no stack state at" in status.stderr
    assert "start one with `python -m harness up --detach`" in status.stderr
    assert down.returncode == 0
    assert "nothing to stop" in down.stdout


def test_logs_of_unknown_component(project: Path) -> None:
    assert harness(project, "up", "--detach", "--only", "redis").returncode == 0
    try:
        logs = harness(project, "logs", "nginx")
        tail = harness(project, "logs", "redis", "-n", "1")
        status = harness(project, "status", "--json")
    finally:
        harness(project, "down")

    assert logs.returncode == 1
    assert "no component 'nginx' in the stack (it has: redis)" in logs.stderr
    assert tail.returncode == 0
    assert len(tail.stdout.splitlines()) == 1
    assert '"name": "cli-test"' in status.stdout


def test_up_foreground_stops_on_sigint(project: Path) -> None:
    state_file = project / ".harness" / "stack.json"
    with subprocess.Popen(
        [sys.executable, "-m", "harness", "up"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as run:
        try:
            assert run.stdout is not None
            for line in run.stdout:
                if line.startswith("press Ctrl-C"):
                    break
            state = StackState.load(state_file)
            run.send_signal(signal.SIGINT)
            output = run.stdout.read()
            run.wait(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()

    assert run.returncode == 0
    assert output == "stopping...\n"
    assert not state_file.exists()
    assert not any(p.alive() for p in state.processes)


def test_status_reports_dead_component(project: Path) -> None:
    assert harness(project, "up", "--detach").returncode == 0
    state = StackState.load(project / ".harness" / "stack.json")
    victim = next(p for p in state.processes if p.component == "web")
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while victim.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        status = harness(project, "status")
    finally:
        harness(project, "down")

    assert status.returncode == 1
    assert "  web              1/2 running" in status.stdout


def test_up_replaces_state_of_a_dead_stack(project: Path) -> None:
    assert harness(project, "up", "--detach", "--only", "redis").returncode == 0
    state = StackState.load(project / ".harness" / "stack.json")
    for process in state.processes:
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while state.alive() and time.monotonic() < deadline:
        time.sleep(0.01)

    up = harness(project, "up", "--detach", "--only", "redis")
    harness(project, "down")

    assert up.returncode == 0, up.stderr
    assert state.workdir is not None
    assert not state.workdir.exists()


def test_up_refuses_while_another_up_is_starting(project: Path) -> None:
    with claim(project / ".harness" / "stack.json"):
        up = harness(project, "up", "--detach", "--only", "redis")

    assert up.returncode == 1
    assert "harness: error: another stack is starting on " in up.stderr
    assert not (project / ".harness" / "stack.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--detatch"], "unrecognized arguments: --detatch"),
        (["start"], "invalid choice: 'start'"),
        (["logs"], "the following arguments are required: COMPONENT"),
        (
            ["logs", "web", "-n", "many"],
            "argument -n/--lines: invalid int value: 'many'",
        ),
    ],
)
def test_bad_arguments_name_the_flag(
    project: Path, args: list[str], message: str
) -> None:
    result = harness(project, *args)

    assert result.returncode == 2
    assert message in result.stderr


def test_up_without_configuration(tmp_path: Path) -> None:
    result = harness(tmp_path, "up")

    assert result.returncode == 1
    assert "no pyproject.toml with a [tool.harness] table in" in result.stderr


def test_up_with_broken_topology_names_the_key(project: Path) -> None:
    (project / "stack.toml").write_text('[components.web]\nkind = "nginx"\n')

    result = harness(project, "up")

    assert result.returncode == 1
    assert "components.web.kind is 'nginx'; use one of process, asgi" in result.stderr
