"""What a test said to the stack: its HTTP exchanges, and the log lines they caused.

Every request a test sends through the ``http`` fixture gets a request id
that starts with the test's own tag, and is recorded with secrets redacted.
When the test fails, the plugin attaches the exchanges and every service log
line that carries one of those request ids.

The same redaction serves wherever a body or a token could reach a report:
``redacted_body`` for messages that quote an answer, and ``Redacted`` for
mappings that tracebacks may print as a function's argument.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REQUEST_ID = "X-Request-ID"
REDACTED = "***"
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization"}
)
SECRET_FIELDS = re.compile(r"password|token|secret", re.IGNORECASE)
BODY_LIMIT = 4096


def test_tag(nodeid: str) -> str:
    """A short, stable tag for a test, the prefix of its request ids."""
    return "t" + hashlib.blake2s(nodeid.encode(), digest_size=5).hexdigest()


@dataclass
class Exchange:
    request_id: str
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: str
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: str = ""
    error: str | None = None

    def render(self) -> str:
        lines = [f"> {self.method} {self.url}"]
        lines += [f"> {name}: {value}" for name, value in self.request_headers]
        if self.request_body:
            lines += ["", self.request_body]
        if self.error is not None:
            lines.append(f"< (no response: {self.error})")
            return "\n".join(lines)
        lines.append(f"< {self.status}")
        lines += [f"< {name}: {value}" for name, value in self.response_headers]
        if self.response_body:
            lines += ["", self.response_body]
        return "\n".join(lines)


class Recorder:
    """Tags and records the requests of one test; use ``client`` to send them."""

    def __init__(self, nodeid: str) -> None:
        self.tag = test_tag(nodeid)
        self.exchanges: list[Exchange] = []
        self._numbers = itertools.count(1)

    def client(self, base_url: str, **options: Any) -> httpx.Client:
        return httpx.Client(
            base_url=base_url,
            event_hooks={
                "request": [self._on_request],
                "response": [self._on_response],
            },
            **options,
        )

    @property
    def request_ids(self) -> list[str]:
        return [exchange.request_id for exchange in self.exchanges]

    def render(self) -> str:
        return "\n\n".join(exchange.render() for exchange in self.exchanges)

    def _on_request(self, request: httpx.Request) -> None:
        if REQUEST_ID not in request.headers:
            request.headers[REQUEST_ID] = f"{self.tag}-{next(self._numbers)}"
        self.exchanges.append(
            Exchange(
                request_id=request.headers[REQUEST_ID],
                method=request.method,
                url=str(request.url),
                request_headers=_headers(request.headers.multi_items()),
                request_body=redacted_body(request.content),
            )
        )

    def _on_response(self, response: httpx.Response) -> None:
        response.read()
        exchange = next(
            (e for e in reversed(self.exchanges)
             if e.request_id == response.request.headers.get(REQUEST_ID)),
            None,
        )  # fmt: skip
        if exchange is not None:
            exchange.status = response.status_code
            exchange.response_headers = _headers(response.headers.multi_items())
            exchange.response_body = redacted_body(response.content)


def log_lines(logs_dir: Path, request_ids: Iterable[str]) -> list[str]:
    """Every line of the stack's logs that names one of ``request_ids``."""
    wanted = set(request_ids)
    if not wanted or not logs_dir.is_dir():
        return []
    pattern = re.compile("|".join(re.escape(rid) for rid in sorted(wanted)))
    found: list[str] = []
    for log in sorted(logs_dir.glob("*.log")):
        with open(log, encoding="utf-8", errors="replace") as lines:
            found.extend(
                f"{log.stem} | {line.rstrip()}"
                for line in lines
                if pattern.search(line)
            )
    return found


def redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if SECRET_FIELDS.search(str(key)) else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def redacted_body(content: bytes, *, indent: int | None = 1) -> str:
    """A body as a report may show it: JSON with its secret fields redacted,
    other text unless it looks like it holds secrets, cut at BODY_LIMIT.

    ``indent=None`` gives JSON on one line, for error messages.
    """
    if not content:
        return ""
    try:
        text = json.dumps(redact_json(json.loads(content)), indent=indent)
    except (ValueError, UnicodeDecodeError):
        text = content[:BODY_LIMIT].decode("utf-8", errors="replace")
        return (
            "(not JSON; not shown in case it holds secrets)"
            if SECRET_FIELDS.search(text)
            else text
        )
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + "\n... (cut)"


class Redacted(dict[str, Any]):
    """A JSON object or a set of headers whose repr hides its secrets.

    pytest prints the arguments of a failing function, and ``--showlocals``
    its locals: a body, a token pair or auth headers passed around in this
    type show there as ``***`` where a secret field or header would be.
    """

    def __repr__(self) -> str:
        return repr(
            {
                key: REDACTED if str(key).lower() in SECRET_HEADERS else value
                for key, value in redact_json(dict(self)).items()
            }
        )


def _headers(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (name, REDACTED if name.lower() in SECRET_HEADERS else value)
        for name, value in items
    ]
