"""Errors every service can raise; each service derives its own from ServiceError."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a service raises on purpose."""


class ConfigError(ServiceError):
    """A setting is missing or malformed; the message names the variable."""


class DatabaseError(ServiceError):
    """Postgres could not be reached or refused a command."""
