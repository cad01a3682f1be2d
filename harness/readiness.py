"""Waiting for a component's replicas to become ready, under a deadline.

Each probe attempt first checks that the process is still alive, so a crash
is reported at once with its exit code instead of after the whole deadline.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from harness.errors import ComponentStartError
from harness.processes import ManagedProcess, log_tail
from harness.topology import Probe

logger = logging.getLogger(__name__)


class NotReady(Exception):
    """One probe attempt failed; the message is the reason."""


class _Died(Exception):
    def __init__(self, process: ManagedProcess, code: int) -> None:
        self.process = process
        self.code = code


def check(
    probe: Probe, host: str, ports: Mapping[str, int], argv: Sequence[str]
) -> None:
    """One attempt of ``probe`` against one replica; raises NotReady."""
    timeout_s = probe.attempt_timeout_s
    if probe.kind == "command":
        try:
            done = subprocess.run(
                list(argv), capture_output=True, timeout=timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NotReady(f"{argv[0]}: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip()
            last = output.splitlines()[-1] if output else "no output"
            raise NotReady(f"exit status {done.returncode}: {last}")
        return
    assert probe.port is not None  # the topology parser always sets it
    port = ports[probe.port]
    if probe.kind == "tcp":
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            raise NotReady(f"connect to {host}:{port}: {exc}") from exc
        return
    url = f"http://{host}:{port}{probe.path}"
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise NotReady(f"GET {url}: {exc!r}") from exc
    if not response.is_success:
        raise NotReady(f"GET {url}: HTTP {response.status_code}")


def wait_ready(
    component: str,
    attempt: Callable[[], None],
    process: ManagedProcess | None,
    *,
    awaited: str,
    deadline_s: float,
) -> None:
    """Retry ``attempt`` until it passes, a process dies, or the deadline passes."""
    last_error: list[str] = []

    def one_attempt() -> None:
        code = process.exit_code() if process else None
        if process is not None and code is not None:
            raise _Died(process, code)
        try:
            attempt()
        except NotReady as exc:
            last_error[:] = [str(exc)]
            raise

    def log_retry(state: RetryCallState) -> None:
        logger.debug(
            "%s not ready after %d attempt(s): %s",
            component, state.attempt_number, last_error[-1] if last_error else "",
        )  # fmt: skip

    retrying = Retrying(
        stop=stop_after_delay(deadline_s),
        wait=wait_exponential(multiplier=0.01, min=0.01, max=0.2),
        retry=retry_if_exception_type(NotReady),
        before_sleep=log_retry,
        reraise=True,
    )
    started = time.monotonic()
    try:
        retrying(one_attempt)
    except _Died as died:
        raise ComponentStartError(
            component,
            reason=f"exited with code {died.code} before it became ready",
            awaited=awaited,
            deadline_s=deadline_s,
            last_error=last_error[-1] if last_error else None,
            exit_code=died.code,
            log_path=str(died.process.log_path),
            log_tail=log_tail(died.process.log_path),
            hint="the log above usually says why; run the command by hand to see more",
        ) from None
    except NotReady:
        waited = time.monotonic() - started
        log = process.log_path if process else None
        raise ComponentStartError(
            component,
            reason=f"was not ready after {waited:.1f}s",
            awaited=awaited,
            deadline_s=deadline_s,
            last_error=last_error[-1] if last_error else None,
            log_path=str(log) if log else None,
            log_tail=log_tail(log) if log else None,
            hint="raise start_timeout_s in the topology if it is merely slow",
        ) from None
