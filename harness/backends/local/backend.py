"""Run components as local processes on free loopback ports.

A *recipe* per component kind knows how to prepare, launch and address that
kind (``postgres``, ``redis``, ``asgi``, ``mailsink``, ``process``); this
module does what is common: ports, templates, setup steps, readiness, and
keeping track of every process so that nothing outlives the stack.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness import readiness
from harness.endpoints import Endpoint
from harness.errors import ComponentStartError
from harness.processes import ManagedProcess, log_tail, run_step, spawn, stop_all
from harness.templates import Context, render
from harness.topology import Component, Probe

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
SETUP_STEP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Launch:
    """How to run one replica."""

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM


class Recipe(Protocol):
    """What the local backend needs to know about one kind of component."""

    def prepare(self, unit: Unit) -> None:
        """Work before any replica starts (e.g. initdb); raise ComponentStartError."""

    def launch(self, unit: Unit, replica: int) -> Launch: ...

    def default_probe(self, unit: Unit) -> Probe: ...

    def endpoint(self, unit: Unit) -> Endpoint: ...

    def after_ready(self, unit: Unit) -> None:
        """Work once every replica is ready (e.g. create a database)."""


@dataclass
class Unit:
    """One component being started: its ports, folders, and its dependencies."""

    component: Component
    ports: list[dict[str, int]]
    workdir: Path
    root: Path
    dependencies: Mapping[str, Endpoint]
    settings: Mapping[str, str]
    host: str = HOST

    @property
    def name(self) -> str:
        return self.component.name

    def log_path(self, replica: int | None = None) -> Path:
        suffix = (
            "" if replica is None or self.component.replicas == 1 else f"-{replica}"
        )
        return self.workdir.parent / "logs" / f"{self.name}{suffix}.log"

    def render(self, template: str, *, key: str, replica: int = 0) -> str:
        context = Context(
            component=self.name,
            host=self.host,
            ports=self.ports[replica],
            replica=replica,
            workdir=str(self.workdir),
            endpoints=self.dependencies,
            settings=self.settings,
        )
        return render(template, context, key=key)

    def render_argv(
        self, argv: Sequence[str], *, key: str, replica: int = 0
    ) -> list[str]:
        return [self.render(arg, key=key, replica=replica) for arg in argv]

    def env(self, replica: int = 0) -> dict[str, str]:
        """The process environment: ours, then the project root on PYTHONPATH, then
        the component's own variables."""
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = f"{self.root}{os.pathsep}{path}" if path else str(self.root)
        env["PYTHONUNBUFFERED"] = "1"
        for name, template in self.component.env.items():
            key = f"components.{self.name}.env.{name}"
            env[name] = self.render(template, key=key, replica=replica)
        return env

    def run(self, argv: Sequence[str], *, what: str, user: str | None = None) -> None:
        """Run a preparation step; its failure becomes a ComponentStartError."""
        log = self.log_path()
        try:
            done = run_step(
                argv,
                env=self.env(),
                log_path=log,
                timeout_s=SETUP_STEP_TIMEOUT_S,
                cwd=self.root,
                user=user,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComponentStartError(
                self.name,
                reason=f"did not finish its {what} in time",
                awaited=f"{' '.join(argv)} exiting 0",
                deadline_s=SETUP_STEP_TIMEOUT_S,
                log_path=str(log),
                log_tail=log_tail(log),
            ) from exc
        except OSError as exc:
            raise ComponentStartError(
                self.name,
                reason=f"could not run its {what}",
                awaited=" ".join(argv),
                last_error=str(exc),
                hint="check that the program exists and is executable",
            ) from exc
        if done.returncode != 0:
            raise ComponentStartError(
                self.name,
                reason=f"failed in its {what}",
                awaited=f"{' '.join(argv)} exiting 0",
                exit_code=done.returncode,
                log_path=str(log),
                log_tail=log_tail(log),
            )


class LocalBackend:
    """Starts components as processes; thread-safe so components start in parallel."""

    name = "local"

    def __init__(self, *, workdir: Path, root: Path) -> None:
        self.workdir = workdir
        self.root = root
        self._processes: list[ManagedProcess] = []
        self._reserved_ports: set[int] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._units: dict[str, Unit] = {}

    @property
    def processes(self) -> list[ManagedProcess]:
        with self._lock:
            return list(self._processes)

    def plan(self, component: Component, settings: Mapping[str, str]) -> Endpoint:
        from harness.backends.local.recipes import recipe_for

        unit = Unit(
            component=component,
            ports=[
                self._free_ports(component.ports) for _ in range(component.replicas)
            ],
            workdir=self.workdir / component.name,
            root=self.root,
            dependencies={},
            settings=settings,
        )
        self._units[component.name] = unit
        return recipe_for(component.kind).endpoint(unit)

    def start(
        self, component: Component, endpoints: Mapping[str, Endpoint]
    ) -> Endpoint:
        from harness.backends.local.recipes import recipe_for

        recipe = recipe_for(component.kind)
        unit = self._units[component.name]
        unit.dependencies = endpoints
        unit.workdir.mkdir(parents=True, exist_ok=True)
        recipe.prepare(unit)
        for index, step in enumerate(component.setup):
            key = f"components.{component.name}.setup[{index}]"
            unit.run(unit.render_argv(step, key=key), what=f"setup step {index}")
        probe = component.probe or recipe.default_probe(unit)
        processes = [
            self._spawn(unit, recipe.launch(unit, r), r)
            for r in range(component.replicas)
        ]
        for replica, process in enumerate(processes):
            argv = unit.render_argv(
                probe.command, key=f"components.{unit.name}.probe", replica=replica
            )
            readiness.wait_ready(
                component.name,
                functools.partial(
                    readiness.check, probe, unit.host, unit.ports[replica], argv
                ),
                process,
                awaited=_awaited(probe, component, replica),
                deadline_s=component.start_timeout_s,
            )
        recipe.after_ready(unit)
        return recipe.endpoint(unit)

    def stop(self) -> None:
        with self._lock:
            processes, self._processes = self._processes, []
            self._stopped = True
        # Later components depend on earlier ones: stop them first.
        stop_all(reversed(processes))

    def state(self) -> dict[str, Any]:
        return {"processes": [p.to_json() for p in self.processes]}

    def _spawn(self, unit: Unit, launch: Launch, replica: int) -> ManagedProcess:
        try:
            process = spawn(
                launch.argv,
                component=unit.name,
                replica=replica,
                env=launch.env,
                log_path=unit.log_path(replica),
                cwd=self.root,
                user=launch.user,
                stop_signal=launch.stop_signal,
            )
        except Exception as exc:
            raise ComponentStartError(
                unit.name,
                reason="could not be started",
                awaited=" ".join(launch.argv),
                last_error=str(exc),
                hint="check the component's command in the topology",
            ) from exc
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self._processes.append(process)
        if stopped:  # the stack was stopped while this component was starting
            stop_all([process])
            raise ComponentStartError(unit.name, reason="was stopped while starting")
        return process

    def _free_ports(self, names: Sequence[str]) -> dict[str, int]:
        ports: dict[str, int] = {}
        for name in names:
            while True:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                    probe.bind((HOST, 0))
                    port = int(probe.getsockname()[1])
                with self._lock:
                    if port not in self._reserved_ports:
                        self._reserved_ports.add(port)
                        break
            ports[name] = port
        return ports


def stop_from_state(state: Mapping[str, Any]) -> None:
    stop_all(
        reversed([ManagedProcess.from_json(p) for p in state.get("processes", [])])
    )


def _awaited(probe: Probe, component: Component, replica: int) -> str:
    which = (
        f" (replica {replica + 1} of {component.replicas})"
        if component.replicas > 1
        else ""
    )
    return probe.describe() + which
