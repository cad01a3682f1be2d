"""The harness's exceptions: every one says what failed, why, and what to do."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """The topology or the harness configuration is wrong; the message names the key."""


class StateError(HarnessError):
    """A state file is missing, unreadable, or describes a stack that is gone."""


class ComponentStartError(HarnessError):
    """A component did not start or did not become ready before its deadline.

    The message carries everything needed to act without reading harness code:
    the component, what was awaited, the deadline, the last probe error, the
    exit code if the process died, and the tail of its log.
    """

    def __init__(
        self,
        component: str,
        *,
        reason: str,
        awaited: str | None = None,
        deadline_s: float | None = None,
        last_error: str | None = None,
        exit_code: int | None = None,
        log_path: str | None = None,
        log_tail: list[str] | None = None,
        hint: str | None = None,
    ) -> None:
        self.component = component
        self.reason = reason
        self.awaited = awaited
        self.deadline_s = deadline_s
        self.last_error = last_error
        self.exit_code = exit_code
        self.log_path = log_path
        self.log_tail = log_tail or []
        self.hint = hint
        super().__init__(self._render())

    def __str__(self) -> str:
        return self._render()

    def _render(self) -> str:
        lines = [f"component {self.component!r} {self.reason}"]
        if self.awaited is not None:
            lines.append(f"  awaited:    {self.awaited}")
        if self.deadline_s is not None:
            lines.append(f"  deadline:   {self.deadline_s:g}s")
        if self.last_error is not None:
            lines.append(f"  last error: {self.last_error}")
        if self.exit_code is not None:
            lines.append(f"  exit code:  {self.exit_code}")
        if self.log_path is not None:
            shown = len(self.log_tail)
            lines.append(f"  log:        {self.log_path} (last {shown} lines below)")
            lines.extend(f"    | {line}" for line in self.log_tail)
        if self.hint is not None:
            lines.append(f"  hint:       {self.hint}")
        return "\n".join(lines)


class StackStartError(HarnessError):
    """One or more components failed; the stack was torn down again."""

    def __init__(self, failures: list[ComponentStartError]) -> None:
        self.failures = failures
        super().__init__(self.render())

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        body = "\n\n".join(str(failure) for failure in self.failures)
        names = ", ".join(failure.component for failure in self.failures)
        return f"the stack did not come up ({names} failed):\n\n{body}"
