"""A mail sink: an SMTP server that keeps every message, and an HTTP API to read them.

Run it as ``python -m harness.mailsink --smtp-port 1025 --http-port 8025``.
Both servers share one event loop; SIGTERM or SIGINT stops them and the process
exits with code 0. Messages live in memory only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import logging
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from http import HTTPStatus
from typing import Any

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.errors import HarnessError

__all__ = ["MailStore", "ReceivedMessage", "build_app", "main", "serve"]

logger = logging.getLogger(__name__)


class MailSinkError(HarnessError):
    """The mail sink cannot start."""


@dataclass(frozen=True)
class ReceivedMessage:
    id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    sender: str
    to: str
    body: str
    headers: tuple[tuple[str, str], ...]
    received_at: str
    to_addresses: frozenset[str]

    @classmethod
    def parse(cls, envelope: Envelope) -> ReceivedMessage:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)  # guaranteed by policy.default
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if isinstance(part, EmailMessage) else ""
        to_headers = [str(value) for value in message.get_all("To", [])]
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return cls(
            id=uuid.uuid4().hex,
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            subject=str(message.get("Subject", "")),
            sender=str(message.get("From", "")),
            to=", ".join(to_headers),
            # SMTP carries CRLF line endings; readers compare with Python strings.
            body=str(body).replace("\r\n", "\n"),
            headers=tuple((name, str(value)) for name, value in message.items()),
            received_at=now.replace("+00:00", "Z"),
            to_addresses=frozenset(
                address.lower() for _, address in getaddresses(to_headers) if address
            ),
        )

    def is_for(self, address: str) -> bool:
        wanted = address.lower()
        return wanted in self.to_addresses or any(
            wanted == rcpt.lower() for rcpt in self.rcpt_tos
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "subject": self.subject,
            "from": self.sender,
            "to": self.to,
            "body": self.body,
            "headers": [list(header) for header in self.headers],
            "received_at": self.received_at,
        }


class MailStore:
    """Messages in arrival order. Only the event loop thread touches it."""

    def __init__(self) -> None:
        self._messages: list[ReceivedMessage] = []

    def add(self, message: ReceivedMessage) -> None:
        self._messages.append(message)

    def find(
        self, *, to: str | None = None, subject: str | None = None
    ) -> list[ReceivedMessage]:
        return [
            message
            for message in self._messages
            if (to is None or message.is_for(to))
            and (subject is None or subject in message.subject)
        ]

    def get(self, message_id: str) -> ReceivedMessage | None:
        return next((m for m in self._messages if m.id == message_id), None)

    def clear(self, *, to: str | None = None) -> None:
        if to is None:
            self._messages.clear()
        else:
            self._messages = [m for m in self._messages if not m.is_for(to)]


class _StoringHandler:
    def __init__(self, store: MailStore) -> None:
        self._store = store

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd looks up
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        message = ReceivedMessage.parse(envelope)
        self._store.add(message)
        recipients = ", ".join(message.rcpt_tos)
        logger.info(
            "stored message %s to %s: %r", message.id, recipients, message.subject
        )
        return "250 Message accepted for delivery"


def build_app(store: MailStore) -> Starlette:
    """The HTTP API over ``store``; errors are RFC 9457 problem documents."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def messages(request: Request) -> Response:
        # One endpoint for both methods, so a 405 here lists both in Allow.
        to = request.query_params.get("to")
        if request.method == "DELETE":
            store.clear(to=to)
            return Response(status_code=204)
        found = store.find(to=to, subject=request.query_params.get("subject"))
        return JSONResponse({"messages": [message.to_json() for message in found]})

    async def get_message(request: Request) -> Response:
        message_id = request.path_params["message_id"]
        message = store.get(message_id)
        if message is None:
            raise HTTPException(404, f"no message with id {message_id!r}")
        return JSONResponse(message.to_json())

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # registered for HTTPException only
        status = exc.status_code
        body = {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": exc.detail,
        }
        return JSONResponse(
            body,
            status_code=status,
            headers=exc.headers,
            media_type="application/problem+json",
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/messages", messages, methods=["GET", "DELETE"]),
            Route("/messages/{message_id}", get_message, methods=["GET"]),
        ],
        exception_handlers={HTTPException: problem},
    )


class _HttpServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The sink stops both servers on a signal; uvicorn's own handling would
        # re-raise the signal after shutdown and end the process with it.
        yield


async def serve(smtp_socket: socket.socket, http_socket: socket.socket) -> None:
    """Serve SMTP and HTTP on listening sockets until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    store = MailStore()
    handler = _StoringHandler(store)
    smtp_server = await loop.create_server(
        lambda: SMTP(handler, hostname="mailsink", loop=loop), sock=smtp_socket
    )
    smtp_at, http_at = smtp_socket.getsockname()[:2], http_socket.getsockname()[:2]
    config = uvicorn.Config(
        build_app(store),
        host=http_at[0],
        port=http_at[1],
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    http_server = _HttpServer(config)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    logger.info(
        "mail sink listening: SMTP on %s:%d, HTTP on http://%s:%d", *smtp_at, *http_at
    )
    http_task = asyncio.create_task(http_server.serve(sockets=[http_socket]))
    stop_task = asyncio.create_task(stopping.wait())
    await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)

    logger.info("mail sink stopping")
    stop_task.cancel()
    http_server.should_exit = True
    smtp_server.close()
    await http_task


def _listen(host: str, port: int, service: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise MailSinkError(
            f"cannot listen for {service} on {host}:{port}: {exc}"
        ) from exc


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port number: {text!r}")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.mailsink",
        description="Keep every message sent over SMTP; serve them over HTTP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--smtp-port", type=_port, default=1025, help="SMTP port")
    parser.add_argument("--http-port", type=_port, default=8025, help="HTTP port")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # aiosmtpd logs every SMTP command at INFO; one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        smtp_socket = _listen(args.host, args.smtp_port, "SMTP")
        with smtp_socket, _listen(args.host, args.http_port, "HTTP") as http_socket:
            asyncio.run(serve(smtp_socket, http_socket))
    except MailSinkError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
