"""Structured logs: one JSON object per line, and one line per request.

Services call ``configure_logging`` once at start-up. Request lines carry the
request id, method, route template, status and duration; nothing that could
be a secret (bodies, query strings, Authorization headers) is ever logged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

REQUEST_LOGGER = "campus.request"
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; ``extra={...}`` fields become keys."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _RESERVED and not key.startswith("_")
        )
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(service: str, level: str | None = None) -> None:
    """Send every log record to stderr as JSON; LOG_LEVEL sets the level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
    # The servers' own access logs would duplicate our request lines.
    logging.getLogger("uvicorn.access").disabled = True


def log_request(
    request_id: str,
    method: str,
    route: str,
    status: int,
    started: float,
    **fields: Any,
) -> None:
    """Write the one line a request gets; ``started`` is a perf_counter() value."""
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    logging.getLogger(REQUEST_LOGGER).info(
        "%s %s %d",
        method,
        route,
        status,
        extra={
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            **fields,
        },
    )
