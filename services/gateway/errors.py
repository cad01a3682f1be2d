"""What can go wrong in the gateway; each request-time error knows its HTTP answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GatewayError(Exception):
    """Base of every gateway error."""


class ConfigError(GatewayError):
    """The gateway's configuration (environment, route table) is unusable."""


class RequestRejected(GatewayError):
    """A request the gateway answers itself, with a problem document.

    ``str(error)`` becomes the problem's ``detail``; ``headers`` are added to
    the response; ``extra`` members are added to the problem document;
    ``upstream`` (the replica URL involved, if any) is logged, never shown
    to the client.
    """

    status = 500

    def __init__(
        self,
        detail: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        upstream: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.headers = headers
        self.upstream = upstream
        self.extra = dict(extra or {})


class BadRequest(RequestRejected):
    status = 400


class Unauthenticated(RequestRejected):
    status = 401


class Forbidden(RequestRejected):
    status = 403


class NotFound(RequestRejected):
    status = 404


class MethodNotAllowed(RequestRejected):
    status = 405


class RequestTimeout(RequestRejected):
    status = 408


class BodyTooLarge(RequestRejected):
    status = 413


class TooManyRequests(RequestRejected):
    status = 429


class BadGateway(RequestRejected):
    status = 502


class Unavailable(RequestRejected):
    status = 503


class GatewayTimeout(RequestRejected):
    status = 504


class TokenRejected(GatewayError):
    """An access token that must not be accepted; the message says why."""
