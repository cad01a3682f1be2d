"""The stack's Redis, alone, for tests that crash, pause or restart it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from harness.backends.local.backend import LocalBackend
from harness.processes import ManagedProcess
from harness.topology import load_topology

ROOT = Path(__file__).parents[3]
KILL_TIMEOUT_S = 10.0


class RestartableRedis:
    """The stack's Redis component, alone, in a folder of its own."""

    def __init__(self, workdir: Path) -> None:
        self.component = load_topology(ROOT / "services" / "stack.toml")["redis"]
        self.backend = LocalBackend(workdir=workdir, root=ROOT)
        self.url = self.backend.plan(self.component, {}).url

    def start(self) -> None:
        """Start it (again: same port, same folder, so the same append-only file)."""
        self.backend.start(self.component, {})

    def crash(self) -> None:
        """SIGKILL: no shutdown, no last write; as if the process died."""
        process = self._running()
        os.kill(process.pid, signal.SIGKILL)
        assert process.popen is not None
        process.popen.wait(KILL_TIMEOUT_S)

    def stop(self) -> None:
        for process in self.backend.processes:
            if process.alive():
                os.kill(process.pid, signal.SIGCONT)  # a paused one must hear it
        self.backend.stop()

    def pause(self) -> None:
        """SIGSTOP: its connections stay open and it answers nothing."""
        os.kill(self._running().pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._running().pid, signal.SIGCONT)

    def _running(self) -> ManagedProcess:
        [process] = [p for p in self.backend.processes if p.alive()]
        return process
