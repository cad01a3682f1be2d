"""RFC 9457 problem details: the body of every error a service returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int, detail: str, *, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A problem document; with ``type`` about:blank, ``title`` is the status phrase."""
    return {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
