"""The state file: how a running stack is found, inspected and stopped later.

``python -m harness up`` writes it, ``status``, ``logs`` and ``down`` read it,
and ``pytest --stack external --stack-state FILE`` takes its endpoints. A file
written by hand needs only ``endpoints``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends import stop_from_state
from harness.endpoints import Endpoints
from harness.errors import ConfigError, HarnessError, StateError
from harness.processes import ManagedProcess

FORMAT_VERSION = 1


@dataclass
class StackState:
    name: str
    backend: str
    endpoints: Endpoints
    workdir: Path | None = None
    owner_pid: int | None = None
    created_at: str | None = None
    backend_state: dict[str, Any] = field(default_factory=dict)

    @property
    def processes(self) -> list[ManagedProcess]:
        return [
            ManagedProcess.from_json(p) for p in self.backend_state.get("processes", [])
        ]

    def alive(self) -> bool:
        """True while any process of the stack still runs."""
        return any(process.alive() for process in self.processes)

    def remove(self, path: Path) -> None:
        """Stop the stack's processes; delete its folder and its state file."""
        stop_from_state(self.backend, self.backend_state)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        path.unlink(missing_ok=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "name": self.name,
            "backend": self.backend,
            "workdir": str(self.workdir) if self.workdir else None,
            "owner_pid": self.owner_pid,
            "created_at": self.created_at,
            "endpoints": self.endpoints.to_json(),
            "backend_state": self.backend_state,
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "state") -> StackState:
        if not isinstance(data, dict) or "endpoints" not in data:
            raise StateError(
                f"{source} has no 'endpoints' object; is it a harness state file?"
            )
        try:
            endpoints = Endpoints.from_json(data["endpoints"])
        except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"{source}: malformed endpoints ({exc!r})") from exc
        workdir = data.get("workdir")
        return cls(
            name=str(data.get("name", "stack")),
            backend=str(data.get("backend", "external")),
            endpoints=endpoints,
            workdir=Path(workdir) if workdir else None,
            owner_pid=data.get("owner_pid"),
            created_at=data.get("created_at"),
            backend_state=dict(data.get("backend_state", {})),
        )

    def save(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(
            json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8"
        )
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackState:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StateError(
                f"no stack state at {path}: "
                "start one with `python -m harness up --detach`"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_json(data, source=str(path))


@contextlib.contextmanager
def claim(path: Path) -> Iterator[None]:
    """Hold ``path`` for a stack about to start and save its state there.

    An exclusive lock on ``<path>.lock`` is held until the block ends, so two
    starts on one state file cannot both pass the check; a stack that is
    already running on it is refused with a message saying how to stop it,
    and what a dead one left behind is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(
                f"another stack is starting on {path}; wait for it and stop it "
                "with `python -m harness down`, or pass another --state-file"
            ) from None
        try:
            leftover = StackState.load(path) if path.exists() else None
        except StateError:
            leftover = None  # unreadable: this start overwrites it
        if leftover is not None and leftover.alive():
            raise HarnessError(
                f"a stack is already running (started {leftover.created_at} by pid "
                f"{leftover.owner_pid}; state in {path}); stop it with "
                "`python -m harness down`, or pass another --state-file"
            )
        if leftover is not None:
            leftover.remove(path)
        yield
