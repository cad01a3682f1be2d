"""Readiness probes, and waiting for them under a deadline."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.errors import ComponentStartError
from harness.processes import ManagedProcess, log_tail, spawn
from harness.readiness import NotReady, check, wait_ready
from harness.topology import Probe

HOST = "127.0.0.1"
HTTP_PROBE = Probe("http", port="http", path="/healthz")
AWAITED = HTTP_PROBE.describe()

Start = Callable[[str], ManagedProcess]


class _Health(BaseHTTPRequestHandler):
    """200 on /healthz, 500 anywhere else."""

    def do_GET(self) -> None:
        status = 200 if self.path == "/healthz" else 500
        body = b"ok" if status == 200 else b"database unreachable"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def http_port() -> Iterator[int]:
    """The port of a tiny HTTP server answering as ``_Health`` does."""
    server = ThreadingHTTPServer((HOST, 0), _Health)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Spawn ``python -c CODE`` as component ``api``; killed afterwards if running."""
    started: list[ManagedProcess] = []

    def start(code: str) -> ManagedProcess:
        process = spawn(
            [sys.executable, "-c", code],
            component="api",
            replica=0,
            env={"PYTHONUNBUFFERED": "1"},
            log_path=tmp_path / "api.log",
        )
        started.append(process)
        return process

    yield start

    for process in started:
        assert process.popen is not None
        if process.popen.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait(timeout=10)


def _not_ready(probe: Probe, ports: dict[str, int], argv: Sequence[str] = ()) -> str:
    with pytest.raises(NotReady) as excinfo:
        check(probe, HOST, ports, argv)
    return str(excinfo.value)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# -- check -----------------------------------------------------------------------


def test_check_tcp_passes_on_a_listening_port(listening_port: int) -> None:
    check(Probe("tcp", port="redis"), HOST, {"redis": listening_port}, [])


def test_check_tcp_fails_on_a_closed_port(closed_port: int) -> None:
    message = _not_ready(Probe("tcp", port="redis"), {"redis": closed_port})

    assert message == f"connect to {HOST}:{closed_port}: [Errno 111] Connection refused"


def test_check_tcp_probes_the_named_port(listening_port: int, closed_port: int) -> None:
    ports = {"smtp": listening_port, "http": closed_port}

    check(Probe("tcp", port="smtp"), HOST, ports, [])
    assert _not_ready(Probe("tcp", port="http"), ports).startswith(
        f"connect to {HOST}:{closed_port}: "
    )


def test_check_http_passes_on_2xx(http_port: int) -> None:
    check(HTTP_PROBE, HOST, {"http": http_port}, [])


def test_check_http_fails_on_500(http_port: int) -> None:
    probe = Probe("http", port="http", path="/ready")

    assert _not_ready(probe, {"http": http_port}) == (
        f"GET http://{HOST}:{http_port}/ready: HTTP 500"
    )


def test_check_http_fails_when_nothing_listens(closed_port: int) -> None:
    message = _not_ready(HTTP_PROBE, {"http": closed_port})

    assert message.startswith(f"GET http://{HOST}:{closed_port}/healthz: ConnectError(")
    assert "Connection refused" in message


def test_check_command_passes_on_exit_0() -> None:
    check(Probe("command"), HOST, {}, _python("raise SystemExit(0)"))


def test_check_command_fails_on_exit_3() -> None:
    message = _not_ready(Probe("command"), {}, _python("raise SystemExit(3)"))

    assert message == "exit status 3: no output"


def test_check_command_reports_the_last_line_of_stderr() -> None:
    code = "import sys; print('checking'); sys.exit('warming up\\nstill warming up')"

    message = _not_ready(Probe("command"), {}, _python(code))

    assert message == "exit status 1: still warming up"


def test_check_command_reports_stdout_without_stderr() -> None:
    message = _not_ready(
        Probe("command"), {}, _python("print('no'); raise SystemExit(2)")
    )

    assert message == "exit status 2: no"


def test_check_command_missing_program(tmp_path: Path) -> None:
    program = str(tmp_path / "pg_isready")

    message = _not_ready(Probe("command"), {}, [program])

    assert message == (f"{program}: [Errno 2] No such file or directory: '{program}'")


def test_check_command_over_its_attempt_timeout() -> None:
    argv = _python("import time; time.sleep(60)")

    message = _not_ready(Probe("command", attempt_timeout_s=0.2), {}, argv)

    assert message.startswith(f"{sys.executable}: Command '{argv}' timed out after 0.")


# -- wait_ready ------------------------------------------------------------------


def test_wait_ready_retries_until_the_attempt_passes() -> None:
    attempts: list[int] = []

    def attempt() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise NotReady(f"attempt {len(attempts)} refused")

    wait_ready("api", attempt, None, awaited=AWAITED, deadline_s=10.0)

    assert attempts == [1, 2, 3]


def test_wait_ready_times_out_with_the_log_tail(start: Start) -> None:
    process = start(
        "print('booting'); print('loading models', flush=True); import time; time.sleep(60)"
    )
    deadline = time.monotonic() + 10.0
    while len(log_tail(process.log_path)) < 2:
        assert time.monotonic() < deadline, "the process never logged"
        time.sleep(0.01)

    def attempt() -> None:
        raise NotReady(f"connect to {HOST}:1: [Errno 111] Connection refused")

    with pytest.raises(ComponentStartError) as excinfo:
        wait_ready("api", attempt, process, awaited=AWAITED, deadline_s=0.3)

    error = excinfo.value
    assert error.component == "api"
    assert error.exit_code is None
    lines = str(error).splitlines()
    assert lines[0].startswith("component 'api' was not ready after ")
    assert lines[1:] == [
        "  awaited:    HTTP 2xx from GET /healthz on port 'http'",
        "  deadline:   0.3s",
        f"  last error: connect to {HOST}:1: [Errno 111] Connection refused",
        f"  log:        {process.log_path} (last 2 lines below)",
        "    | booting",
        "    | loading models",
        "  hint:       raise start_timeout_s in the topology if it is merely slow",
    ]


def test_wait_ready_times_out_without_a_process() -> None:
    def attempt() -> None:
        raise NotReady("GET http://db.example/healthz: HTTP 503")

    with pytest.raises(ComponentStartError) as excinfo:
        wait_ready("db", attempt, None, awaited="the database", deadline_s=0.1)

    assert str(excinfo.value).splitlines()[1:] == [
        "  awaited:    the database",
        "  deadline:   0.1s",
        "  last error: GET http://db.example/healthz: HTTP 503",
        "  hint:       raise start_timeout_s in the topology if it is merely slow",
    ]


def test_wait_ready_fails_fast_when_the_process_has_died(start: Start) -> None:
    process = start("print('fatal: port 8080 is in use'); raise SystemExit(2)")
    assert process.popen is not None
    process.popen.wait(timeout=10)
    attempts: list[int] = []

    with pytest.raises(ComponentStartError) as excinfo:
        wait_ready(
            "api", lambda: attempts.append(1), process, awaited=AWAITED, deadline_s=60
        )

    error = excinfo.value
    assert attempts == []
    assert error.exit_code == 2
    assert str(error).splitlines() == [
        "component 'api' exited with code 2 before it became ready",
        "  awaited:    HTTP 2xx from GET /healthz on port 'http'",
        "  deadline:   60s",
        "  exit code:  2",
        f"  log:        {process.log_path} (last 1 lines below)",
        "    | fatal: port 8080 is in use",
        "  hint:       the log above usually says why; run the command by hand to "
        "see more",
    ]


def test_wait_ready_reports_the_last_error_of_a_process_that_died(start: Start) -> None:
    process = start("import time; time.sleep(60)")
    assert process.popen is not None
    popen = process.popen

    def attempt() -> None:
        popen.terminate()
        popen.wait(timeout=10)
        raise NotReady("connection refused")

    with pytest.raises(ComponentStartError) as excinfo:
        wait_ready("api", attempt, process, awaited=AWAITED, deadline_s=60)

    assert excinfo.value.exit_code == -signal.SIGTERM
    assert excinfo.value.last_error == "connection refused"
    assert "  last error: connection refused" in str(excinfo.value).splitlines()
