"""Child processes: spawned into their own session, logged, and stopped."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.processes import ManagedProcess, log_tail, run_step, spawn, stop_all

Start = Callable[..., ManagedProcess]

SLEEP = "import time; time.sleep(60)"
HANDLES_TERM = """
import signal, sys, time
def stop(signum, frame):
    print("stopping on", signal.Signals(signum).name, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""
IGNORES_TERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def _wait_until(
    predicate: Callable[[], bool], what: str, timeout_s: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout_s}s for {what}")
        time.sleep(0.01)


def _log_says(process: ManagedProcess, line: str) -> Callable[[], bool]:
    return lambda: line in log_tail(process.log_path)


def _ended(process: ManagedProcess) -> int:
    assert process.popen is not None
    return process.popen.wait(timeout=10)


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Spawn ``python -c CODE``; whatever is still running is killed afterwards."""
    started: list[ManagedProcess] = []

    def start(
        code: str, *, component: str = "worker", stop_signal: int = signal.SIGTERM
    ) -> ManagedProcess:
        process = spawn(
            [sys.executable, "-c", code],
            component=component,
            replica=0,
            env={"PYTHONUNBUFFERED": "1"},
            log_path=tmp_path / "logs" / f"{component}.log",
            stop_signal=stop_signal,
        )
        started.append(process)
        return process

    yield start

    for process in started:
        assert process.popen is not None
        if process.popen.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait(timeout=10)


# -- spawn and logs ----------------------------------------------------------------


def test_spawn_appends_stdout_and_stderr_to_the_log(start: Start) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    first = start(code)
    _ended(first)
    second = start(code)
    _ended(second)

    assert second.log_path == first.log_path
    assert log_tail(first.log_path) == ["out", "err", "out", "err"]


def test_spawn_passes_exactly_the_given_environment(start: Start) -> None:
    assert "PATH" in os.environ
    process = start(
        "import os; print(os.environ['PYTHONUNBUFFERED'], 'PATH' in os.environ)"
    )
    _ended(process)

    assert log_tail(process.log_path) == ["1 False"]


def test_spawn_starts_a_new_session(start: Start) -> None:
    process = start("import os; print(os.getsid(0) == os.getpid())")
    _ended(process)

    assert log_tail(process.log_path) == ["True"]


def test_spawn_records_what_was_started(start: Start, tmp_path: Path) -> None:
    process = start(SLEEP, component="api")

    assert process.component == "api"
    assert process.replica == 0
    assert process.argv == [sys.executable, "-c", SLEEP]
    assert process.log_path == tmp_path / "logs" / "api.log"
    assert process.popen is not None
    assert process.pid == process.popen.pid
    assert process.started_at is not None
    assert process.alive()


def test_spawn_missing_executable_names_the_component(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as excinfo:
        spawn(
            [str(tmp_path / "no-such-program"), "--serve"],
            component="api",
            replica=0,
            env={},
            log_path=tmp_path / "api.log",
        )

    assert str(excinfo.value) == (
        f"cannot run '{tmp_path / 'no-such-program'}' for component 'api': "
        f"No such file or directory: {tmp_path / 'no-such-program'}"
    )


def test_spawn_missing_working_folder_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as excinfo:
        spawn(
            [sys.executable, "-c", "pass"],
            component="api",
            replica=0,
            env={},
            log_path=tmp_path / "api.log",
            cwd=tmp_path / "missing",
        )

    assert str(tmp_path / "missing") in str(excinfo.value)


def test_log_tail_returns_the_last_lines(start: Start) -> None:
    process = start("for n in range(1, 51): print(f'line {n}')")
    _ended(process)

    assert log_tail(process.log_path, 5) == [f"line {n}" for n in range(46, 51)]
    assert log_tail(process.log_path) == [f"line {n}" for n in range(21, 51)]


def test_log_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert log_tail(tmp_path / "never-written.log") == []


def test_log_tail_decodes_leniently(tmp_path: Path) -> None:
    path = tmp_path / "binary.log"
    path.write_bytes(b"ok\n\xff\xfe broken\n")

    assert log_tail(path) == ["ok", "\ufffd\ufffd broken"]


def test_exit_code_none_while_running(start: Start) -> None:
    process = start(SLEEP)

    assert process.exit_code() is None


def test_exit_code_after_exit(start: Start) -> None:
    process = start("raise SystemExit(3)")
    _ended(process)

    assert process.exit_code() == 3
    assert not process.alive()


# -- stopping ----------------------------------------------------------------------


def test_stop_all_stops_a_process_that_handles_sigterm(start: Start) -> None:
    process = start(HANDLES_TERM)
    _wait_until(_log_says(process, "ready"), "the SIGTERM handler")

    stop_all([process], timeout_s=5.0)

    assert not process.alive()
    assert process.exit_code() == 0
    assert log_tail(process.log_path) == ["ready", "stopping on SIGTERM"]


def test_stop_all_kills_a_process_that_ignores_sigterm(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    process = start(IGNORES_TERM)
    _wait_until(_log_says(process, "ready"), "SIGTERM to be ignored")

    with caplog.at_level(logging.WARNING, logger="harness.processes"):
        stop_all([process], timeout_s=0.5)

    assert process.exit_code() == -signal.SIGKILL
    assert caplog.messages == [
        f"worker[0] pid {process.pid} ignored signal 15 for 0.5s; killing it"
    ]


def test_stop_all_sends_the_stop_signal(start: Start) -> None:
    process = start(SLEEP, stop_signal=signal.SIGINT)

    stop_all([process], timeout_s=5.0)

    assert process.exit_code() == -signal.SIGINT


def test_stop_all_stops_the_whole_process_group(start: Start) -> None:
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {SLEEP!r}])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    process = start(code)
    _wait_until(lambda: bool(log_tail(process.log_path)), "the child's pid")
    child_pid = int(log_tail(process.log_path)[0].split()[1])
    assert _running(child_pid)

    stop_all([process], timeout_s=5.0)

    assert not process.alive()
    _wait_until(lambda: not _running(child_pid), "the child to be gone", 2.0)


def test_stop_all_skips_processes_that_already_ended(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    process = start("pass")
    _ended(process)

    with caplog.at_level(logging.DEBUG, logger="harness.processes"):
        stop_all([process], timeout_s=0.5)

    assert process.exit_code() == 0
    assert caplog.messages == []


# -- processes read back from a state file ------------------------------------------


def test_managed_process_json_round_trip(start: Start) -> None:
    process = start(SLEEP)

    rebuilt = ManagedProcess.from_json(process.to_json())

    assert rebuilt.popen is None
    assert rebuilt.to_json() == process.to_json()
    assert rebuilt.alive()
    assert rebuilt.exit_code() is None


def test_managed_process_rebuilt_with_another_start_time_is_not_alive(
    start: Start,
) -> None:
    process = start(SLEEP)
    data = process.to_json()
    assert isinstance(data["started_at"], int)

    rebuilt = ManagedProcess.from_json({**data, "started_at": data["started_at"] - 1})

    assert not rebuilt.alive()
    assert rebuilt.exit_code() == -1


def test_stop_all_stops_a_process_rebuilt_from_json(start: Start) -> None:
    process = start(SLEEP)
    rebuilt = ManagedProcess.from_json(process.to_json())
    # The stack's owner reaps its children (as init does once the owner is gone).
    assert process.popen is not None
    reaper = threading.Thread(target=process.popen.wait, daemon=True)
    reaper.start()

    stop_all([rebuilt], timeout_s=5.0)
    reaper.join(timeout=10)

    assert not rebuilt.alive()
    assert rebuilt.exit_code() == -1
    assert process.popen.returncode == -signal.SIGTERM


def test_stop_all_rebuilt_process_that_obeys_sigterm_is_not_killed(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    process = start(SLEEP)
    rebuilt = ManagedProcess.from_json(process.to_json())

    with caplog.at_level(logging.WARNING, logger="harness.processes"):
        stop_all([rebuilt], timeout_s=0.2)

    assert not rebuilt.alive()
    assert caplog.messages == []


# -- setup steps -------------------------------------------------------------------


def test_run_step_logs_the_command_and_its_output(tmp_path: Path) -> None:
    log = tmp_path / "steps" / "db.log"
    argv = [sys.executable, "-c", "print('migrating'); raise SystemExit(4)"]

    done = run_step(argv, env={}, log_path=log, timeout_s=10.0)

    assert done.returncode == 4
    assert log.read_text(encoding="utf-8") == f"$ {' '.join(argv)}\nmigrating\n"


def test_run_step_appends_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "db.log"
    log.write_text("earlier\n", encoding="utf-8")
    argv = [sys.executable, "-c", "print('seeded')"]

    done = run_step(argv, env={}, log_path=log, timeout_s=10.0, cwd=tmp_path)

    assert done.returncode == 0
    assert log_tail(log) == ["earlier", f"$ {' '.join(argv)}", "seeded"]


def test_run_step_timeout_raises(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", SLEEP]

    with pytest.raises(subprocess.TimeoutExpired) as excinfo:
        run_step(argv, env={}, log_path=tmp_path / "db.log", timeout_s=0.2)

    assert excinfo.value.cmd == argv
