"""The stack engine: start a topology in dependency order, in parallel, and stop it.

Every component's addresses are planned first, so any component may name any
other's. Then components whose dependencies are ready start at once, each in
its own thread; a component starts as soon as everything it depends on is
ready.
If any component fails, everything already started is stopped again and the
error describes every failure.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from harness.backends import Backend, create_backend
from harness.endpoints import Endpoint, Endpoints
from harness.errors import ComponentStartError, HarnessError, StackStartError
from harness.state import StackState
from harness.topology import Topology

logger = logging.getLogger(__name__)

# Where the logs of a stack that failed to start are kept, below the project root.
FAILED_START_LOGS = Path(".harness") / "failed-start-logs"


@dataclass(frozen=True)
class ComponentReady:
    """Reported once per component as it becomes ready."""

    name: str
    kind: str
    replicas: int
    elapsed_s: float
    address: str


def generate_secret() -> str:
    """A random secret with letters, digits and a symbol, so that it passes the
    password rules a service is likely to have."""
    return f"{secrets.token_urlsafe(18)}-{secrets.randbelow(900) + 100}"


def address_of(endpoint: Endpoint) -> str:
    """The one-line address a person would use to reach a component."""
    if endpoint.dsn:
        return endpoint.dsn
    if endpoint.urls:
        extra = [v for k, v in endpoint.extra.items() if "://" in v]
        return ", ".join([*endpoint.urls, *extra])
    return f"{endpoint.host}:{endpoint.port}"


class Stack:
    """A topology brought up by a backend; use as a context manager or start/stop."""

    def __init__(
        self,
        topology: Topology,
        *,
        root: Path,
        backend: str = "local",
        on_ready: Callable[[ComponentReady], None] | None = None,
    ) -> None:
        self.topology = topology
        self.root = root
        self.backend_name = backend
        self.on_ready = on_ready
        self.workdir: Path | None = None
        self.endpoints: Endpoints | None = None
        self.elapsed_s = 0.0
        self._backend: Backend | None = None
        # Secrets are new for every start, so no password outlives its stack.
        self.settings = {
            **topology.settings,
            **{name: generate_secret() for name in topology.secrets},
        }
        self._stop_lock = threading.Lock()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Endpoints:
        started = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"harness-{self.topology.name}-"))
        # Postgres may run as another OS user, who must be able to reach its folder.
        self.workdir.chmod(0o755)
        self._backend = create_backend(
            self.backend_name, workdir=self.workdir, root=self.root
        )
        logger.info("starting stack %r in %s", self.topology.name, self.workdir)
        try:
            ready = self._start_all(self._backend)
        except StackStartError as exc:
            self._keep_logs(exc)
            self.stop()
            raise
        except BaseException:
            self.stop()
            raise
        self.elapsed_s = time.monotonic() - started
        self.endpoints = Endpoints(
            {name: ready[name] for name in self.topology.start_order()},
            self.settings,
        )
        logger.info("stack %r ready in %.2fs", self.topology.name, self.elapsed_s)
        return self.endpoints

    def stop(self) -> None:
        """Stop every process and remove the working folder; safe to call twice."""
        with self._stop_lock:
            backend, self._backend = self._backend, None
            workdir, self.workdir = self.workdir, None
        if backend is not None:
            logger.info("stopping stack %r", self.topology.name)
            backend.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def _keep_logs(self, error: StackStartError) -> None:
        """Move the logs out of the working folder, which is about to be removed."""
        assert self.workdir is not None
        kept = self.root / FAILED_START_LOGS
        shutil.rmtree(kept, ignore_errors=True)
        kept.parent.mkdir(parents=True, exist_ok=True)
        logs = self.workdir / "logs"
        if not logs.is_dir():
            return
        shutil.move(logs, kept)
        for failure in error.failures:
            if failure.log_path is not None:
                failure.log_path = str(kept / Path(failure.log_path).name)

    def state(self) -> StackState:
        if self.endpoints is None or self._backend is None:
            raise HarnessError("the stack is not running")
        return StackState(
            name=self.topology.name,
            backend=self.backend_name,
            endpoints=self.endpoints,
            workdir=self.workdir,
            owner_pid=os.getpid(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            backend_state=self._backend.state(),
        )

    def _start_all(self, backend: Backend) -> dict[str, Endpoint]:
        components = self.topology.components
        order = self.topology.start_order()
        ready: dict[str, Endpoint] = {}
        planned: dict[str, Endpoint] = {}
        failures: list[ComponentStartError] = []
        running: dict[Future[Endpoint], str] = {}
        submitted: set[str] = set()
        pool = ThreadPoolExecutor(len(components), thread_name_prefix="harness-start")

        def submit_unblocked() -> None:
            for name in order:
                needs = components[name].depends_on
                if name not in submitted and all(dep in ready for dep in needs):
                    submitted.add(name)
                    running[pool.submit(self._start_one, backend, name, planned)] = name

        try:
            for name in order:
                try:
                    planned[name] = backend.plan(components[name], self.settings)
                except HarnessError as exc:
                    raise StackStartError(
                        [
                            ComponentStartError(
                                name, reason="failed", last_error=str(exc)
                            )
                        ]
                    ) from exc
            submit_unblocked()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    try:
                        ready[name] = future.result()
                    except ComponentStartError as exc:
                        failures.append(exc)
                    except HarnessError as exc:
                        failures.append(
                            ComponentStartError(
                                name, reason="failed", last_error=str(exc)
                            )
                        )
                if not failures:
                    submit_unblocked()
        finally:
            # On Ctrl-C, do not wait for probes: stopping the processes ends them.
            pool.shutdown(wait=not running, cancel_futures=True)
        if failures:
            raise StackStartError(failures)
        return ready

    def _start_one(
        self, backend: Backend, name: str, endpoints: dict[str, Endpoint]
    ) -> Endpoint:
        component = self.topology.components[name]
        started = time.monotonic()
        endpoint = backend.start(component, endpoints)
        event = ComponentReady(
            name=name,
            kind=component.kind,
            replicas=component.replicas,
            elapsed_s=time.monotonic() - started,
            address=address_of(endpoint),
        )
        logger.info("%s ready in %.2fs at %s", name, event.elapsed_s, event.address)
        if self.on_ready is not None:
            self.on_ready(event)
        return endpoint
