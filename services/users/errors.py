"""The users service's own exceptions; problem responses are services.common.api's."""

from __future__ import annotations

from services.common.errors import ConfigError, DatabaseError, ServiceError

__all__ = ["ConfigError", "DatabaseError", "KeyStoreError", "UsersError"]


class UsersError(ServiceError):
    """Base of every error the users service raises on purpose."""


class KeyStoreError(UsersError):
    """The signing keys cannot be read or written; the message names the folder."""
