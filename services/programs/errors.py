"""The programs service's own exceptions; problems are services.common.api's."""

from __future__ import annotations

from services.common.errors import ConfigError, DatabaseError, ServiceError

__all__ = ["ConfigError", "DatabaseError", "DependencyDown", "ProgramsError"]


class ProgramsError(ServiceError):
    """Base of every error the programs service raises on purpose."""


class DependencyDown(ProgramsError):
    """Another service did not answer, or answered nonsense; the message names it."""
