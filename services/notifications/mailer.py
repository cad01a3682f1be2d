"""Handing one email to the SMTP server, and telling a failure worth retrying
from one that is not."""

from __future__ import annotations

import asyncio
import logging
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from services.notifications.delivery import Attempt
from services.notifications.errors import PermanentFailure, TransientFailure

logger = logging.getLogger(__name__)

NOTIFICATION_HEADER = "X-Campus-Notification-Id"


class Mailer:
    """Sends over SMTP to ``host:port`` from ``mail_from``, one connection a mail."""

    def __init__(self, host: str, port: int, mail_from: str, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.sender = parseaddr(mail_from)[1]
        self.domain = self.sender.rpartition("@")[2]
        self.timeout_s = timeout_s

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def message(self, attempt: Attempt) -> EmailMessage:
        """The email of ``attempt``; ValueError when its headers are unusable."""
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = Address(
            display_name=attempt.to_name, addr_spec=attempt.to_email
        )
        message["Subject"] = attempt.subject
        message["Date"] = formatdate(usegmt=True)
        # The same id on every attempt lets a receiver drop a repeated delivery.
        message["Message-ID"] = f"<{attempt.notification_id}@{self.domain}>"
        message[NOTIFICATION_HEADER] = str(attempt.notification_id)
        message.set_content(attempt.body)
        return message

    async def send(self, attempt: Attempt) -> str:
        """Send the email of ``attempt``; returns the server's reply.

        TransientFailure for what may pass (no connection, a timeout, a 4xx
        reply), PermanentFailure for what will not (a 5xx reply, an unusable
        address or header).
        """
        try:
            message = self.message(attempt)
        except (ValueError, IndexError) as exc:
            raise PermanentFailure(
                f"the email to {attempt.to_email!r} cannot be built: {exc}"
            ) from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                _, reply = await aiosmtplib.send(
                    message,
                    sender=self.sender,
                    recipients=[attempt.to_email],
                    hostname=self.host,
                    port=self.port,
                    timeout=self.timeout_s,
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _refused(exc, attempt.to_email) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(
                exc.code, f"the SMTP server at {self.server} replied {exc.code} "
                f"{exc.message}"
            ) from exc  # fmt: skip
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientFailure(
                f"cannot deliver to the SMTP server at {self.server}: {_describe(exc)}"
            ) from exc
        logger.debug(
            "%s accepted the email of %s", self.server, attempt.notification_id
        )
        return reply


def _refused(exc: aiosmtplib.SMTPRecipientsRefused, address: str) -> Exception:
    replies = exc.recipients or []
    described = "; ".join(f"{r.code} {r.message}" for r in replies) or "no reply"
    reason = f"the SMTP server refused the recipient {address!r}: {described}"
    if replies and all(400 <= r.code < 500 for r in replies):
        return TransientFailure(reason)
    return PermanentFailure(reason)


def _by_code(code: int, reason: str) -> Exception:
    return PermanentFailure(reason) if 500 <= code < 600 else TransientFailure(reason)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return text or type(exc).__name__
