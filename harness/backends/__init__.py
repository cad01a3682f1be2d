"""Ways to run a topology. Each backend starts components and stops them again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.endpoints import Endpoint
from harness.topology import Component

BACKENDS = ("local",)


class Backend(Protocol):
    """Starts one component at a time; the stack engine decides the order."""

    name: str

    def plan(self, component: Component, settings: Mapping[str, str]) -> Endpoint:
        """Reserve the component's addresses, before anything starts.

        Every component is planned first, so that any component's command or
        environment may name any other's address, whatever the start order.
        """

    def start(
        self, component: Component, endpoints: Mapping[str, Endpoint]
    ) -> Endpoint:
        """Start every replica of a planned component; return once all are ready.

        ``endpoints`` are every planned component's. Raises
        ComponentStartError; whatever it started stays registered so that
        ``stop`` removes it.
        """

    def stop(self) -> None:
        """Stop everything this backend started, in parallel, and forget it."""

    def state(self) -> dict[str, Any]:
        """What ``stop_from_state`` needs to stop the stack from another process."""


def create_backend(name: str, *, workdir: Path, root: Path) -> Backend:
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend(workdir=workdir, root=root)
    raise ValueError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")


def stop_from_state(name: str, state: Mapping[str, Any]) -> None:
    """Stop a stack that another process started, from its saved state."""
    stopper: Callable[[Mapping[str, Any]], None]
    if name == "external":
        return  # someone else's stack: not ours to stop
    if name == "local":
        from harness.backends.local import stop_from_state as stopper
    else:
        raise ValueError(f"unknown backend {name!r} in state file")
    stopper(state)
