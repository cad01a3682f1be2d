"""Which headers cross the gateway, in each direction, and the request id.

Towards a service the gateway drops hop-by-hop headers, the client's
``Host`` and ``Content-Length`` (the client library sets them again), and
every identity header a client could forge: ``X-User-Id``, ``X-User-Roles``
and ``X-Campus-*``. It sets ``X-Request-ID``, ``X-Forwarded-*`` and, on
authenticated routes, the identity taken from the access token.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
IDENTITY = frozenset({b"x-user-id", b"x-user-roles"})
IDENTITY_PREFIX = b"x-campus-"
# Set again by the gateway or its HTTP client, never passed on as sent.
_REPLACED_IN_REQUEST = frozenset(
    {
        b"host",
        b"content-length",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    }
)
# The gateway's server writes its own Date, Server and Content-Length.
_REPLACED_IN_RESPONSE = frozenset(
    {b"content-length", b"date", b"server", b"x-request-id"}
)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

RawHeaders = Iterable[tuple[bytes, bytes]]


@dataclass
class RequestHeaders:
    """A client's headers, split into what is forwarded and what the gateway reads."""

    forward: list[tuple[str, str]] = field(default_factory=list)
    authorization: str | None = None
    request_id: str | None = None
    host: str | None = None
    content_length: bytes | None = None
    forwarded_for: list[bytes] = field(default_factory=list)


def split_request_headers(raw: RawHeaders) -> RequestHeaders:
    """One pass over the client's headers; names are compared in lower case."""
    headers = RequestHeaders()
    dropped: set[bytes] = set()
    for raw_name, raw_value in raw:
        name = raw_name.lower()
        if name == b"authorization":
            headers.authorization = raw_value.decode("latin-1")
        elif name == b"x-request-id":
            headers.request_id = raw_value.decode("latin-1")
        elif name == b"host":
            headers.host = raw_value.decode("latin-1")
        elif name == b"content-length":
            headers.content_length = raw_value
        elif name == b"x-forwarded-for":
            headers.forwarded_for.append(raw_value)
        elif name == b"connection":
            dropped.update(token.strip().lower() for token in raw_value.split(b","))
        if (
            name in HOP_BY_HOP
            or name in IDENTITY
            or name in _REPLACED_IN_REQUEST
            or name.startswith(IDENTITY_PREFIX)
        ):
            continue
        headers.forward.append((name.decode("latin-1"), raw_value.decode("latin-1")))
    if dropped:
        names = {token.decode("latin-1") for token in dropped}
        headers.forward = [item for item in headers.forward if item[0] not in names]
    return headers


def response_headers(raw: RawHeaders) -> list[tuple[bytes, bytes]]:
    """A service's response headers, minus what the gateway's server sets itself."""
    kept: list[tuple[bytes, bytes]] = []
    dropped: set[bytes] = set()
    for raw_name, value in raw:
        name = raw_name.lower()
        if name == b"connection":
            dropped.update(token.strip().lower() for token in value.split(b","))
        if name in HOP_BY_HOP or name in _REPLACED_IN_RESPONSE:
            continue
        kept.append((name, value))
    if dropped:
        kept = [item for item in kept if item[0] not in dropped]
    return kept


def request_id(sent: str | None) -> str:
    """The client's request id when it is sane, else a new one."""
    if sent is not None and _SANE_REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex
