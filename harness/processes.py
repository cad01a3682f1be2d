"""Child processes of a stack: started in their own session, logged, and stopped.

Each process runs in a new session so that a Ctrl-C in the terminal reaches
the harness, not the stack: the harness decides the order of teardown. A
process is identified by its pid *and* its start time, so a state file never
makes the harness signal an unrelated process that reused a pid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 30


@dataclass
class ManagedProcess:
    """A process the harness started; ``popen`` is None when read from a state file."""

    component: str
    replica: int
    argv: list[str]
    pid: int
    log_path: Path
    stop_signal: int = signal.SIGTERM
    started_at: int | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, else None."""
        if self.popen is not None:
            return self.popen.poll()
        return None if self.alive() else -1

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _start_time(self.pid) == self.started_at and self.started_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "replica": self.replica,
            "argv": self.argv,
            "pid": self.pid,
            "log": str(self.log_path),
            "stop_signal": int(self.stop_signal),
            "started_at": self.started_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManagedProcess:
        return cls(
            component=data["component"],
            replica=int(data["replica"]),
            argv=list(data["argv"]),
            pid=int(data["pid"]),
            log_path=Path(data["log"]),
            stop_signal=int(data["stop_signal"]),
            started_at=data.get("started_at"),
        )


def spawn(
    argv: Sequence[str],
    *,
    component: str,
    replica: int,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ManagedProcess:
    """Start ``argv`` in a new session, its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                **_as_user(user),
            )
        except OSError as exc:
            what = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
            raise HarnessError(
                f"cannot run {argv[0]!r} for component {component!r}: {what}"
            ) from exc
    logger.debug("started %s[%d] pid %d: %s", component, replica, popen.pid, argv)
    return ManagedProcess(
        component=component,
        replica=replica,
        argv=list(argv),
        pid=popen.pid,
        log_path=log_path,
        stop_signal=stop_signal,
        started_at=_start_time(popen.pid),
        popen=popen,
    )


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that run a child as ``user``, with that user's own group."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run_step(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    timeout_s: float,
    cwd: Path | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a short command to completion, its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            timeout=timeout_s,
            check=False,
            **_as_user(user),
        )


def stop_all(processes: Iterable[ManagedProcess], timeout_s: float = 5.0) -> None:
    """Ask every process group to stop, wait, then kill what is left.

    All groups are signalled at once, so the whole stack stops in the time of
    its slowest member rather than the sum of all.
    """
    pending = [p for p in processes if p.alive()]
    for process in pending:
        _signal_group(process, process.stop_signal)
    deadline = time.monotonic() + timeout_s
    pending = _wait_gone(pending, deadline)
    for process in pending:
        logger.warning(
            "%s[%d] pid %d ignored signal %d for %.1fs; killing it",
            process.component, process.replica, process.pid,
            process.stop_signal, timeout_s,
        )  # fmt: skip
        _signal_group(process, signal.SIGKILL)
    _wait_gone(pending, time.monotonic() + 2.0)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log file, decoded leniently."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            text = log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


def _signal_group(process: ManagedProcess, signum: int) -> None:
    try:
        # Every process leads its own session, so its group id is its pid.
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise HarnessError(
            f"not allowed to stop {process.component} (pid {process.pid}): {exc}"
        ) from exc


def _wait_gone(
    processes: list[ManagedProcess], deadline: float
) -> list[ManagedProcess]:
    pending = list(processes)
    while pending:
        for process in pending:
            if process.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.popen.wait(timeout=0)  # reap it once it has exited
        pending = [p for p in pending if p.alive() or group_alive(p.pid)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    return pending


def group_alive(pgid: int) -> bool:
    """True while a process of the group runs; exited but unreaped ones do not count."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue  # it ended while we looked
        fields = raw[raw.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])
