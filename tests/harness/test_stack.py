"""The stack engine with the local backend: order, parallelism, and failures."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
import redis

from harness.backends.local import recipes
from harness.errors import StackStartError
from harness.eventually import eventually
from harness.stack import ComponentReady, Stack
from harness.topology import parse_topology

PY = sys.executable


def start(tmp_path: Path, components: dict[str, object], **stack: object) -> Stack:
    topology = parse_topology(
        {"stack": {"name": "t", **stack}, "components": components}
    )
    return Stack(topology, root=tmp_path)


def test_stack_reports_missing_executable(tmp_path: Path) -> None:
    stack = start(
        tmp_path, {"ghost": {"command": ["/nonexistent/ghostd", "--port", "{port}"]}}
    )

    with pytest.raises(StackStartError) as caught:
        stack.start()

    message = str(caught.value)
    assert message.startswith("the stack did not come up (ghost failed):")
    assert "component 'ghost' could not be started" in message
    assert "  awaited:    /nonexistent/ghostd --port " in message
    assert (
        "cannot run '/nonexistent/ghostd' for component 'ghost': No such file"
        in message
    )
    assert "  hint:       check the component's command in the topology" in message


def test_stack_reports_probe_that_never_passes(tmp_path: Path) -> None:
    # Commands are templates: literal braces would be placeholders.
    chatty = "import time\nfor i in range(1, 36): print('line', i)\ntime.sleep(60)"
    stack = start(
        tmp_path,
        {"mute": {"command": [PY, "-c", chatty], "start_timeout_s": 0.5}},
    )

    with pytest.raises(StackStartError) as caught:
        stack.start()

    failure = caught.value.failures[0]
    message = str(failure)
    assert message.startswith("component 'mute' was not ready after 0.")
    assert "  awaited:    TCP connect to port 'main'" in message
    assert "  deadline:   0.5s" in message
    assert "  last error: connect to 127.0.0.1:" in message
    assert "Connection refused" in message
    assert "exit code" not in message
    assert failure.log_tail == [f"line {i}" for i in range(6, 36)]
    assert "    | line 35" in message
    kept = tmp_path / ".harness" / "failed-start-logs" / "mute.log"
    assert failure.log_path == str(kept)
    assert kept.read_text().splitlines()[-1] == "line 35"
    assert stack.workdir is None


def test_stack_reports_process_that_exits(tmp_path: Path) -> None:
    stack = start(
        tmp_path,
        {"crash": {"command": [PY, "-c", "print('no config'); raise SystemExit(7)"]}},
    )

    with pytest.raises(StackStartError) as caught:
        stack.start()

    message = str(caught.value)
    assert "component 'crash' exited with code 7 before it became ready" in message
    assert "  exit code:  7" in message
    assert "    | no config" in message


def test_stack_failure_stops_what_started_and_skips_dependents(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    keeper = (
        f"import os, time\nopen({str(pids)!r}, 'a').write(str(os.getpid()) + ' ')\n"
        "time.sleep(60)"
    )
    stack = start(
        tmp_path,
        {
            "ok": {"command": [PY, "-c", keeper], "probe": {"command": ["true"]}},
            "bad": {"command": [PY, "-c", "raise SystemExit(1)"], "depends_on": ["ok"]},
            "after": {"command": [PY, "-c", keeper], "depends_on": ["bad"]},
        },
    )

    with pytest.raises(StackStartError) as caught:
        stack.start()

    assert [f.component for f in caught.value.failures] == ["bad"]
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 1  # "after" never started
    with pytest.raises(ProcessLookupError):
        os.kill(started[0], 0)


def test_stack_reports_failed_setup_step(tmp_path: Path) -> None:
    stack = start(
        tmp_path,
        {
            "svc": {
                "command": [PY, "-m", "http.server", "{port}"],
                "setup": [
                    [PY, "-c", "print('migration 3 failed'); raise SystemExit(2)"]
                ],
            }
        },
    )

    with pytest.raises(StackStartError) as caught:
        stack.start()

    message = str(caught.value)
    assert "component 'svc' failed in its setup step 0" in message
    assert "  exit code:  2" in message
    assert "    | migration 3 failed" in message


def test_stack_reports_unknown_placeholder(tmp_path: Path) -> None:
    stack = start(tmp_path, {"svc": {"command": ["run", "{db.dsn}"]}})

    with pytest.raises(StackStartError) as caught:
        stack.start()

    assert (
        "components.svc.command: unknown placeholder {db.dsn}: 'db' is not a "
        "component of the stack"
    ) in str(caught.value)


def test_stack_starts_independent_components_in_parallel(tmp_path: Path) -> None:
    # Each setup step waits for the other's marker: run one after the other,
    # the first would wait for a marker that never comes and fail.
    def waits_for(mine: str, theirs: str) -> list[str]:
        code = (
            "import pathlib, time\n"
            f"pathlib.Path({str(tmp_path / mine)!r}).touch()\n"
            "deadline = time.monotonic() + 20\n"
            f"while not pathlib.Path({str(tmp_path / theirs)!r}).exists():\n"
            "    assert time.monotonic() < deadline, 'started one after the other'\n"
            "    time.sleep(0.01)\n"
        )
        return [PY, "-c", code]

    serve = [PY, "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
    stack = start(
        tmp_path,
        {
            "a": {"command": serve, "setup": [waits_for("a", "b")]},
            "b": {"command": serve, "setup": [waits_for("b", "a")]},
        },
    )

    with stack:
        assert stack.endpoints is not None
        assert set(stack.endpoints) == {"a", "b"}


def test_stack_components_may_name_components_they_do_not_wait_for(
    tmp_path: Path,
) -> None:
    serve = [PY, "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
    stack = start(
        tmp_path,
        {
            "a": {"command": serve, "ports": ["http"], "env": {"PEER": "{b.url}"}},
            "b": {"command": serve, "ports": ["http"], "env": {"PEER": "{a.url}"}},
        },
    )

    with stack:
        assert stack.endpoints is not None
        assert set(stack.endpoints) == {"a", "b"}


def test_stack_reports_components_in_dependency_order(tmp_path: Path) -> None:
    events: list[ComponentReady] = []
    serve = [PY, "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
    topology = parse_topology(
        {
            "stack": {"settings": {"greeting": "hi"}, "secrets": ["token"]},
            "components": {
                "web": {"command": serve, "ports": ["http"], "depends_on": ["redis"],
                        "replicas": 2, "env": {"REDIS": "{redis.url}"}},
                "redis": {"kind": "redis"},
            },
        }
    )  # fmt: skip

    with Stack(topology, root=tmp_path, on_ready=events.append) as stack:
        state = stack.state()
        workdir = stack.workdir

    assert [e.name for e in events] == ["redis", "web"]
    assert events[1].replicas == 2
    assert events[1].address == ", ".join(state.endpoints["web"].urls)
    assert state.endpoints.settings["greeting"] == "hi"
    assert len(state.endpoints.settings["token"]) >= 20
    assert len(state.processes) == 3
    assert workdir is not None
    assert not workdir.exists()
    assert not any(p.alive() for p in state.processes)


def test_stack_postgres_as_root_without_postgres_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_such_user(name: str) -> object:
        raise KeyError(name)

    monkeypatch.setattr(recipes.os, "geteuid", lambda: 0)
    monkeypatch.setattr(recipes.pwd, "getpwnam", no_such_user)
    stack = start(tmp_path, {"db": {"kind": "postgres"}})

    with pytest.raises(StackStartError) as caught:
        stack.start()

    message = str(caught.value)
    assert "component 'db' cannot run as root" in message
    assert (
        "PostgreSQL refuses to run as root, and this machine has no 'postgres' user"
        in message
    )
    assert "useradd --system postgres" in message


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root hands PostgreSQL to the postgres user"
)


@needs_root
def test_stack_postgres_as_root_runs_as_the_postgres_user(tmp_path: Path) -> None:
    with start(tmp_path, {"db": {"kind": "postgres"}}) as stack:
        server = stack.state().processes[0]
        owner = Path(f"/proc/{server.pid}").stat().st_uid

    assert owner == pwd.getpwnam("postgres").pw_uid


@needs_root
def test_stack_postgres_as_root_names_an_unreachable_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    stack = start(tmp_path, {"db": {"kind": "postgres"}})

    with pytest.raises(StackStartError) as caught:
        stack.start()

    message = str(caught.value)
    assert (
        "PostgreSQL runs as the 'postgres' user here (it refuses root), and that "
        f"user cannot enter {private}"
    ) in message
    assert "set TMPDIR to a folder every user can reach" in message
    assert list(private.iterdir()) == []


def test_stack_redis_keeps_nothing_by_default(tmp_path: Path) -> None:
    with start(tmp_path, {"cache": {"kind": "redis"}}) as stack:
        client = redis.Redis.from_url(stack.endpoints["cache"].url)
        config = client.config_get("save") | client.config_get("appendonly")
        client.close()

    assert config == {"save": "", "appendonly": "no"}


def test_stack_persistent_redis_survives_a_crash(tmp_path: Path) -> None:
    components = {"events": {"kind": "redis", "options": {"persistent": True}}}
    with start(tmp_path, components) as stack:
        url = stack.endpoints["events"].url
        server = stack.state().processes[0]
        client = redis.Redis.from_url(url)
        client.xadd("stream", {"n": "1"})
        os.kill(server.pid, signal.SIGKILL)
        eventually(lambda: not server.alive(), what="Redis killed")
        with subprocess.Popen(server.argv, stdout=subprocess.DEVNULL) as again:
            try:
                entries = eventually(
                    lambda: client.xrange("stream"), what="Redis back after a crash"
                )
            finally:
                client.close()
                again.terminate()

    assert [fields for _, fields in entries] == [{b"n": b"1"}]


def test_stack_passes_server_args_to_uvicorn(tmp_path: Path) -> None:
    (tmp_path / "rooted.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': scope['root_path'].encode()})\n"
    )
    stack = start(
        tmp_path,
        {"api": {"kind": "asgi", "app": "rooted:app",
                 "options": {"server_args": ["--root-path", "/{replica}/api"]}}},
    )  # fmt: skip

    with stack:
        assert stack.endpoints is not None
        assert httpx.get(stack.endpoints["api"].url).text == "/0/api"


def test_stack_rejects_malformed_server_args(tmp_path: Path) -> None:
    stack = start(
        tmp_path,
        {"api": {"kind": "asgi", "app": "x:app", "options": {"server_args": "--x"}}},
    )

    with pytest.raises(StackStartError) as caught:
        stack.start()

    assert (
        "components.api.options.server_args must be a list of strings, not '--x'"
        in str(caught.value)
    )
