"""The pytest plugin, tested from the outside: real pytest runs in subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.processes import group_alive
from harness.state import StackState

ECHO_APP = """
import json, os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"pid": os.getpid(), "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""

FULL_TOPOLOGY = """
[stack]
name = "plugin-test"

[components.postgres]
kind = "postgres"

[components.redis]
kind = "redis"

[components.mailsink]
kind = "mailsink"

[components.gateway]
kind = "asgi"
app = "echo_app:app"
replicas = 2
depends_on = ["postgres", "redis"]
env = { DATABASE_URL = "{postgres.dsn}", REDIS_URL = "{redis.url}" }
probe = { http = "/healthz" }
"""

SMALL_TOPOLOGY = """
[components.redis]
kind = "redis"

[components.gateway]
kind = "asgi"
app = "echo_app:app"
depends_on = ["redis"]
"""

# Each inner test records what it saw, so the outer test can compare workers
# and check afterwards that every process of the stack is gone.
RECORDER = """
import json, os, pathlib

def record(name, stack_state):
    out = pathlib.Path(os.environ["RECORD_DIR"])
    out.mkdir(exist_ok=True)
    data = {"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "state": stack_state.to_json()}
    (out / f"{name}.json").write_text(json.dumps(data))
"""


def make_project(pytester: pytest.Pytester, topology: str) -> Path:
    pytester.makepyprojecttoml('[tool.harness]\ntopology = "stack.toml"\n')
    pytester.path.joinpath("stack.toml").write_text(topology)
    pytester.makepyfile(echo_app=ECHO_APP, recorder=RECORDER)
    record_dir = pytester.path / "records"
    pytester._monkeypatch.setenv("RECORD_DIR", str(record_dir))
    return record_dir


def recorded_states(record_dir: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(record_dir.glob("*.json"))]


def assert_stack_gone(state: StackState) -> None:
    assert state.processes, "the recorded state lists no processes"
    for process in state.processes:
        assert not process.alive(), f"{process.component} pid {process.pid} survived"
        assert not group_alive(process.pid), f"{process.component}'s children survived"
    assert state.workdir is not None
    assert not state.workdir.exists(), f"{state.workdir} was left behind"


def test_stack_starts_once_and_is_shared_by_workers(pytester: pytest.Pytester) -> None:
    record_dir = make_project(pytester, FULL_TOPOLOGY)
    pytester.makepyfile(
        test_shared="""
        import asyncio, smtplib, socket
        import asyncpg, httpx, pytest
        from recorder import record

        @pytest.mark.parametrize("n", range(4))
        def test_sees_stack(n, stack, stack_state, http, mailbox):
            record(f"t{n}", stack_state)
            pids = {http.get("/healthz").json()["pid"] for _ in range(2)}
            urls = stack["gateway"].urls
            assert len(urls) == 2
            assert len({httpx.get(u + "/").json()["pid"] for u in urls}) == 2

            async def query():
                conn = await asyncpg.connect(stack["postgres"].dsn)
                try:
                    return await conn.fetchval("SELECT 41 + 1")
                finally:
                    await conn.close()
            assert asyncio.run(query()) == 42

            with socket.create_connection((stack["redis"].host, stack["redis"].port)) as s:
                s.sendall(b"PING\\r\\n")
                assert s.recv(16) == b"+PONG\\r\\n"

            sink = stack["mailsink"]
            with smtplib.SMTP(sink.host, int(sink.extra["smtp_port"])) as smtp:
                smtp.sendmail("a@example.org", [f"user{n}@example.org"], "Subject: hi\\n\\nbody")
            assert mailbox.wait_for(to=f"user{n}@example.org")[0].subject == "hi"
        """
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=4)
    assert result.outlines.count("harness: starting stack 'plugin-test' (auto)") == 1
    result.stdout.fnmatch_lines(["harness:   gateway x2 *ready in*"])
    records = recorded_states(record_dir)
    assert len(records) == 4
    assert {r["worker"] for r in records} == {"gw0", "gw1"}
    assert len({json.dumps(r["state"], sort_keys=True) for r in records}) == 1
    assert_stack_gone(StackState.from_json(records[0]["state"]))


def test_stack_torn_down_after_failing_test(pytester: pytest.Pytester) -> None:
    record_dir = make_project(pytester, FULL_TOPOLOGY)
    pytester.makepyfile(
        test_fails="""
        from recorder import record

        def test_fails(stack_state):
            record("fails", stack_state)
            assert False, "deliberate"
        """
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    assert_stack_gone(StackState.from_json(recorded_states(record_dir)[0]["state"]))


def test_stack_torn_down_when_worker_crashes(pytester: pytest.Pytester) -> None:
    record_dir = make_project(pytester, FULL_TOPOLOGY)
    pytester.makepyfile(
        test_crash="""
        import os
        from recorder import record

        def test_crashes(stack_state):
            record("crash", stack_state)
            os._exit(3)

        def test_passes(stack):
            assert stack["gateway"].url
        """
    )

    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--max-worker-restart=0"
    )

    result.stdout.fnmatch_lines(["*crashed*"])
    assert_stack_gone(StackState.from_json(recorded_states(record_dir)[0]["state"]))


def test_stack_torn_down_on_ctrl_c(pytester: pytest.Pytester) -> None:
    record_dir = make_project(pytester, FULL_TOPOLOGY)
    pytester.makepyfile(
        test_waits="""
        import time
        from recorder import record

        def test_waits_for_interrupt(stack_state):
            record("waits", stack_state)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.05)
        """
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a terminal sends Ctrl-C to the whole group
    )
    try:
        deadline = time.monotonic() + 60
        while not list(record_dir.glob("*.json")) and time.monotonic() < deadline:
            assert run.poll() is None, run.stdout.read().decode() if run.stdout else ""
            time.sleep(0.05)
        state = StackState.from_json(recorded_states(record_dir)[0]["state"])
        assert all(p.alive() for p in state.processes)

        os.killpg(run.pid, signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()

    assert b"KeyboardInterrupt" in output
    assert_stack_gone(state)


def test_stack_not_started_when_no_test_needs_it(pytester: pytest.Pytester) -> None:
    make_project(pytester, SMALL_TOPOLOGY)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    assert "harness: starting stack" not in result.stdout.str()


def test_stack_start_failure_fails_only_tests_that_need_it(
    pytester: pytest.Pytester,
) -> None:
    make_project(
        pytester,
        """
        [components.broken]
        kind = "process"
        command = ["{python}", "-c", "print('cannot bind: config missing'); raise SystemExit(4)"]
        """.replace("\n        ", "\n"),
    )
    pytester.makepyfile(
        test_mixed="""
        def test_needs_stack(stack):
            pass

        def test_plain():
            pass
        """
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*component 'broken' exited with code 4 before it became ready*",
            "*exit code:  4*",
            "*| cannot bind: config missing*",
        ]
    )


def test_external_stack_uses_given_endpoints(pytester: pytest.Pytester) -> None:
    make_project(pytester, SMALL_TOPOLOGY)
    state = {
        "endpoints": {
            "components": {
                "gateway": {
                    "name": "gateway",
                    "kind": "asgi",
                    "host": "staging.example.org",
                    "replicas": [{"http": 443}],
                    "urls": ["https://staging.example.org"],
                }
            }
        }
    }
    pytester.path.joinpath("staging.json").write_text(json.dumps(state))
    pytester.makepyfile(
        test_external="""
        def test_external(stack, http):
            assert stack["gateway"].url == "https://staging.example.org"
            assert str(http.base_url) == "https://staging.example.org"
        """
    )

    result = pytester.runpytest_subprocess(
        "--stack", "external", "--stack-state", "staging.json", "-p", "no:cacheprovider"
    )

    result.assert_outcomes(passed=1)
    assert "harness: starting stack" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stack", "docker"], "*--stack='docker' is not a stack mode; use one of auto, local, external*"),
        (["--stack-state", "x.json"], "*--stack-state only applies with --stack external*"),
        (["--stack", "external", "--stack-state", "missing.json"], "*--stack external: no stack state at *missing.json*"),
        (["--stack", "external", "--stack-state", "x.json", "--keep-stack"], "*--keep-stack has no effect with --stack external*"),
    ],
)  # fmt: skip
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    make_project(pytester, SMALL_TOPOLOGY)
    pytester.path.joinpath("x.json").write_text('{"endpoints": {"components": {}}}')

    result = pytester.runpytest_subprocess(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_keep_stack_leaves_it_for_harness_down(pytester: pytest.Pytester) -> None:
    make_project(pytester, SMALL_TOPOLOGY)
    pytester.makepyfile(test_keep="def test_keep(stack):\n    assert stack\n")

    result = pytester.runpytest_subprocess("--keep-stack", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    state_file = pytester.path / ".harness" / "stack.json"
    result.stdout.fnmatch_lines([f"*stack kept running; endpoints in {state_file}*"])
    state = StackState.load(state_file)
    assert all(p.alive() for p in state.processes)
    down = subprocess.run(
        [sys.executable, "-m", "harness", "down"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert down.returncode == 0, down.stderr
    assert_stack_gone(state)
    assert not state_file.exists()


def test_keep_stack_refuses_to_replace_a_running_stack(
    pytester: pytest.Pytester,
) -> None:
    make_project(pytester, SMALL_TOPOLOGY)
    pytester.makepyfile(test_keep="def test_keep(stack):\n    assert stack\n")
    harness = [sys.executable, "-m", "harness"]
    up = subprocess.run(
        [*harness, "up", "--detach"],
        cwd=pytester.path,
        capture_output=True,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    state_file = pytester.path / ".harness" / "stack.json"
    running = StackState.load(state_file)
    try:
        result = pytester.runpytest_subprocess("--keep-stack", "-p", "no:cacheprovider")

        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*--keep-stack: a stack is already running*stop it with*harness down*"]
        )
        assert StackState.load(state_file).to_json() == running.to_json()
        assert running.alive()
    finally:
        subprocess.run([*harness, "down"], cwd=pytester.path, check=False)
    assert_stack_gone(running)


LOGGING_APP = """
import json

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    print("handled", scope["path"], "request_id=" + headers[b"x-request-id"].decode(), flush=True)
    body = json.dumps({"access_token": "eyJ.secret.sig", "user": "ann"}).encode()
    await send({"type": "http.response.start", "status": 418,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""


def test_failed_test_shows_its_exchanges_log_lines_and_a_rerun_command(
    pytester: pytest.Pytester,
) -> None:
    make_project(pytester, SMALL_TOPOLOGY.replace("echo_app:app", "logging_app:app"))
    pytester.makepyfile(logging_app=LOGGING_APP)
    pytester.makepyfile(
        test_teapot="""
        def test_teapot(http):
            response = http.post(
                "/brew",
                json={"email": "ann@example.org", "password": "hunter2-long"},
                headers={"Authorization": "Bearer eyJ.secret.sig"},
            )
            assert response.status_code == 200

        def test_fine():
            pass
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--seed", "4242")

    result.assert_outcomes(failed=1, passed=1)
    output = result.stdout.str()
    assert "harness: seed 4242 (repeat with --seed 4242)" in output
    result.stdout.fnmatch_lines(
        [
            "*- HTTP exchanges -*",
            "> POST http://127.0.0.1:*/brew",
            "> authorization: [*][*][*]",
            "> x-request-id: t*-1",
            '*"password": "[*][*][*]"*',
            "< 418",
            '*"access_token": "[*][*][*]"*',
            "*- service log lines of these requests -*",
            "gateway | handled /brew request_id=t*-1",
        ]
    )
    attachments = output.split("- HTTP exchanges -")[1].split("short test summary")[0]
    assert "hunter2-long" not in attachments
    assert "eyJ.secret.sig" not in attachments
    result.stdout.fnmatch_lines(
        [
            "harness: stack start-up *s, tests *s",
            "harness: rerun the failures: python -m pytest "
            "test_teapot.py::test_teapot --seed 4242",
        ]
    )


def test_seed_is_shared_by_workers(pytester: pytest.Pytester) -> None:
    make_project(pytester, SMALL_TOPOLOGY)
    pytester.makepyfile(
        test_seeds="""
        import os, pathlib, pytest

        @pytest.mark.parametrize("n", range(4))
        def test_seed(n, seed):
            out = pathlib.Path(os.environ["RECORD_DIR"])
            out.mkdir(exist_ok=True)
            (out / f"{n}.txt").write_text(str(seed))
        """
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=4)
    seeds = {p.read_text() for p in (pytester.path / "records").glob("*.txt")}
    assert len(seeds) == 1
    assert f"harness: seed {seeds.pop()}" in result.stdout.str()


def test_time_spent_seeding_is_summed_over_workers(pytester: pytest.Pytester) -> None:
    make_project(pytester, SMALL_TOPOLOGY)
    pytester.makepyfile(
        test_seeding="""
        import time, pytest
        from harness.reporting import timed

        @pytest.mark.parametrize("n", range(4))
        def test_seeded(n):
            with timed("seeding"):
                time.sleep(0.2)
        """
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=4)
    closing = re.search(
        r"^harness: stack start-up [\d.]+s, seeding ([\d.]+)s \(summed over "
        r"workers, part of the tests' time\), tests [\d.]+s$",
        result.stdout.str(),
        re.MULTILINE,
    )
    assert closing, result.stdout.str()
    assert float(closing.group(1)) >= 0.8  # four blocks of 0.2 s, two per worker
