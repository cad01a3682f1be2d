"""Helpers of the notifications service's tests: identities, a mail sink process
of a test's own, SMTP servers that refuse or answer late, a stand-in for the
users service, and polling that never sleeps blindly."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from harness.eventually import eventually as poll

T = TypeVar("T")

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
"""The ``serve`` fixture: ``async with serve(settings, **changes) as http``."""

ROOT = Path(__file__).parents[3]
SINK_START_S = 15.0


def as_user(user_id: str | uuid.UUID, *roles: str) -> dict[str, str]:
    """The identity headers the gateway sets for a verified token."""
    return {"X-User-Id": str(user_id), "X-User-Roles": ",".join(roles or ("learner",))}


ADMIN_ID = uuid.uuid4()
ADMIN = as_user(ADMIN_ID, "learner", "admin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def new_address(name: str = "ann") -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}@example.org"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], object],
    what: str,
    timeout_s: float = 15.0,
) -> T:
    """``harness.eventually.eventually`` for a coroutine probe: it polls from a
    thread, so the app and its workers keep running on this loop meanwhile."""
    loop = asyncio.get_running_loop()

    def probe_once() -> T:
        return asyncio.run_coroutine_threadsafe(probe(), loop).result(timeout_s)

    return await asyncio.to_thread(
        poll, probe_once, until=until, what=what, timeout_s=timeout_s
    )


class SinkProcess:
    """``python -m harness.mailsink`` on ports of its own, started and stopped at
    will (a stopped sink refuses connections, a real transient failure)."""

    def __init__(self) -> None:
        self.smtp_port = free_port()
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "harness.mailsink",
                "--smtp-port", str(self.smtp_port), "--http-port", str(self.http_port)]  # fmt: skip
        self._process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self._process

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the mail sink exited with {process.returncode}")
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200

        poll(healthy, timeout_s=SINK_START_S, what=f"the mail sink at {self.url}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@dataclass
class RefusingSmtp:
    """An SMTP server in this process that answers every RCPT with ``reply``,
    ``times`` times (forever when None), then accepts."""

    reply: str
    times: int | None = None
    refused: int = 0
    accepted: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd looks up
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.times is None or self.refused < self.times:
            self.refused += 1
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.accepted.append(envelope)
        return "250 Message accepted"


@dataclass
class SlowSmtp:
    """An SMTP server in this process that holds its answer at ``stage`` (RCPT or
    DATA, or None: at none) until ``answer`` is called. At DATA it stores the
    message first: a server that has the email but answers late. ``hang_up``
    drops the connection there instead of answering."""

    stage: str | None = "DATA"
    hang_up: bool = False
    stored: list[Envelope] = field(default_factory=list)
    held: int = 0
    _answer: concurrent.futures.Future[None] = field(
        default_factory=concurrent.futures.Future
    )

    def answer(self) -> None:
        """Let every held command, and every later one, be answered."""
        if not self._answer.done():
            self._answer.set_result(None)

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd looks up
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.stage == "RCPT":
            await self._hold(server)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.stored.append(envelope)
        if self.stage == "DATA":
            await self._hold(server)
        return "250 Message accepted"

    async def _hold(self, server: SMTP) -> None:
        self.held += 1
        if self.hang_up:
            server.transport.close()
        else:
            await asyncio.wrap_future(self._answer)


def start_smtp(handler: object, **options: Any) -> Controller:
    """An aiosmtpd server on a free loopback port; ``options`` go to its Controller."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    return controller


@dataclass
class UsersStandIn:
    """What the stand-in users service knows, and how often it was asked;
    ``failing`` makes it answer 500, ``answer`` answer that instead."""

    url: str = ""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    failing: bool = False
    answer: Response | None = None

    def add(self, email: str, full_name: str = "Ann Lee") -> str:
        user_id = str(uuid.uuid4())
        self.users[user_id] = {
            "id": user_id,
            "email": email,
            "full_name": full_name,
            "roles": ["learner"],
        }
        return user_id

    async def internal_users(self, request: Request) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        self.asked.extend(ids)
        if self.failing:
            return JSONResponse({"detail": "down on purpose"}, status_code=500)
        if self.answer is not None:
            return self.answer
        items = [self.users[i] for i in ids if i in self.users]
        return JSONResponse({"items": items, "total": len(items)})
