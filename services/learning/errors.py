"""The learning service's exceptions; problem responses are services.common.api's.

Errors raised on purpose belong to one of four kinds, each answered with one
status by the handlers ``app.install_error_handlers`` adds: ``NotFound``
(404), ``Conflict`` (409), ``Invalid`` (422, naming the field) and
``Unavailable`` (503).
"""

from __future__ import annotations

from services.common.errors import ConfigError, DatabaseError, ServiceError

__all__ = [
    "ConfigError",
    "Conflict",
    "DatabaseError",
    "Invalid",
    "LearningError",
    "NotFound",
    "Unavailable",
]


class LearningError(ServiceError):
    """Base of every error the learning service raises on purpose."""


class NotFound(LearningError):
    """What the request names does not exist, or is not the caller's to see."""


class Conflict(LearningError):
    """The request does not fit the current state of what it names."""


class Invalid(LearningError):
    """One field of the request is at fault; ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Unavailable(LearningError):
    """Another service the request needs did not answer; nothing was changed."""
