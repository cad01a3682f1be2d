"""Read the mail sink from tests: list, fetch, clear and wait for messages.

``Mailbox`` speaks to the HTTP API of ``python -m harness.mailsink``::

    with Mailbox("http://127.0.0.1:8025") as mailbox:
        [welcome] = mailbox.wait_for(to="ann@example.org", subject="Welcome")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from harness.errors import HarnessError

__all__ = ["Mailbox", "MailboxError", "MailboxTimeout", "Message"]

logger = logging.getLogger(__name__)

# How many messages a timeout report lists before it summarises the rest.
_REPORT_LIMIT = 10


class MailboxError(HarnessError):
    """A request to the mail sink failed; the message names the URL and status."""

    def __init__(self, message: str, *, url: str, status_code: int | None) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code


class MailboxTimeout(MailboxError, AssertionError):
    """The awaited messages did not arrive; pytest reports it as a failed test."""


@dataclass(frozen=True)
class Message:
    """One message the sink received, as its HTTP API returns it."""

    id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    sender: str
    to: str
    body: str
    headers: tuple[tuple[str, str], ...]
    received_at: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        try:
            return cls(
                id=str(data["id"]),
                mail_from=str(data["mail_from"]),
                rcpt_tos=tuple(str(rcpt) for rcpt in data["rcpt_tos"]),
                subject=str(data["subject"]),
                sender=str(data["from"]),
                to=str(data["to"]),
                body=str(data["body"]),
                headers=tuple(
                    (str(name), str(value)) for name, value in data["headers"]
                ),
                received_at=str(data["received_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a mail sink message ({exc!r}): {data!r}") from exc

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or None."""
        wanted = name.lower()
        return next((v for n, v in self.headers if n.lower() == wanted), None)


class Mailbox:
    """A client of the mail sink's HTTP API at ``base_url``.

    A ``client`` passed in is used as is and left open by ``close``.
    """

    def __init__(self, base_url: str, *, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=5.0)

    def messages(
        self, to: str | None = None, subject: str | None = None
    ) -> list[Message]:
        """Messages in arrival order, optionally only those to ``to``.

        ``to`` matches an envelope recipient or a To address in any case;
        ``subject`` matches any part of the subject, case included.
        """
        data = self._request("GET", "/messages", _filters(to, subject)).json()
        return [Message.from_json(item) for item in data["messages"]]

    def get(self, message_id: str) -> Message:
        path = f"/messages/{quote(message_id, safe='')}"
        return Message.from_json(self._request("GET", path).json())

    def clear(self, to: str | None = None) -> None:
        """Delete every message, or only those to ``to``."""
        self._request("DELETE", "/messages", _filters(to, None))

    def wait_for(
        self,
        *,
        to: str | None = None,
        subject: str | None = None,
        count: int = 1,
        timeout_s: float = 10.0,
        interval_s: float = 0.1,
    ) -> list[Message]:
        """Poll until at least ``count`` messages match; return all that match."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if timeout_s < 0 or interval_s <= 0:
            raise ValueError(
                f"need timeout_s >= 0 and interval_s > 0, "
                f"got timeout_s={timeout_s}, interval_s={interval_s}"
            )

        deadline = time.monotonic() + timeout_s
        polls = 0
        while True:
            found = self.messages(to=to, subject=subject)
            polls += 1
            logger.debug("poll %d: %d of %d message(s)", polls, len(found), count)
            if len(found) >= count:
                return found
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            time.sleep(min(interval_s, remaining_s))

        awaited = f"{count} message(s) {_describe(to, subject)}"
        raise MailboxTimeout(
            f"waited {timeout_s:g}s for {awaited} at {self.base_url}: "
            f"{polls} poll(s), the last found {len(found)}\n" + self._report(found),
            url=f"{self.base_url}/messages",
            status_code=None,
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _report(self, found: list[Message]) -> str:
        """What the sink holds, so a wrong address or subject shows at once."""
        try:
            held = self.messages()
            lines = [f"the sink holds {len(held)} message(s)" + (":" if held else "")]
        except MailboxError as exc:
            held = found
            lines = [f"could not list all messages ({exc}); the last poll saw:"]
        lines.extend(
            f"  - to {list(m.rcpt_tos)} (To: {m.to!r}), subject {m.subject!r}"
            for m in held[-_REPORT_LIMIT:]
        )
        if len(held) > _REPORT_LIMIT:
            lines.append(f"  (only the last {_REPORT_LIMIT} shown)")
        return "\n".join(lines)

    def _request(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._client.request(method, url, params=params)
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            status, sent_to = exc.response.status_code, str(exc.request.url)
            raise MailboxError(
                f"{method} {sent_to} returned {status}: {_detail(exc.response)}",
                url=sent_to,
                status_code=status,
            ) from exc
        except httpx.TransportError as exc:
            raise MailboxError(
                f"{method} {url} failed: {exc!r}; is the mail sink running?",
                url=url,
                status_code=None,
            ) from exc
        return response


def _filters(to: str | None, subject: str | None) -> dict[str, str]:
    params = {"to": to, "subject": subject}
    return {name: value for name, value in params.items() if value is not None}


def _describe(to: str | None, subject: str | None) -> str:
    parts = [f"to={to!r}"] if to is not None else []
    if subject is not None:
        parts.append(f"subject containing {subject!r}")
    return "matching " + " and ".join(parts) if parts else "of any kind"


def _detail(response: httpx.Response) -> str:
    """The problem document's detail, else the start of the body."""
    try:
        problem = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(problem, dict) and "detail" in problem:
        return str(problem["detail"])
    return response.text[:200]
