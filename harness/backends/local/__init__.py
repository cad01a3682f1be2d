"""The local backend: every component is a process on loopback."""

from harness.backends.local.backend import LocalBackend, stop_from_state

__all__ = ["LocalBackend", "stop_from_state"]
