"""Handing one email to the SMTP server, and telling a failure worth retrying
from one that is not, and both from one that leaves the email's fate unknown.

The conversation goes step by step (connect, EHLO, STARTTLS when the server
offers it, MAIL, RCPT, DATA) so that a failure is judged by how far it got.
Until the end of the data is sent, the server cannot have the email: a
failure then is transient or permanent. Once it is sent, the server may have
stored the email even if its answer never comes (a timeout, a dropped
connection): sending again could deliver it twice, so that failure is
``UncertainDelivery`` and the email is not sent again.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib
from aiosmtplib import SMTPStatus

from services.notifications.delivery import Attempt
from services.notifications.errors import (
    DeliveryFailure,
    PermanentFailure,
    TransientFailure,
    UncertainDelivery,
)

logger = logging.getLogger(__name__)

NOTIFICATION_HEADER = "X-Campus-Notification-Id"
_LEADING_DOT = re.compile(rb"(?m)^\.")


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
        """Send the email of ``attempt``, all within ``timeout_s``; returns the
        server's reply.

        TransientFailure for what may pass (no connection, a timeout, a 4xx
        reply), PermanentFailure for what will not (a 5xx reply, an unusable
        address or header), UncertainDelivery when the whole email went to the
        server but its answer did not come back.
        """
        try:
            message = self.message(attempt)
        except (ValueError, IndexError) as exc:
            raise PermanentFailure(
                f"the email to {attempt.to_email!r} cannot be built: {exc}"
            ) from exc
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout_s
        )
        transfer = _Transfer(client, self.sender, attempt.to_email, self.server)
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await transfer.run(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if transfer.reply is None:
                raise self._failure(exc, transfer) from exc
            reply = transfer.reply  # accepted; only the goodbye went wrong
        finally:
            client.close()
        logger.debug(
            "%s accepted the email of %s", self.server, attempt.notification_id
        )
        return reply

    def _failure(self, exc: Exception, transfer: _Transfer) -> DeliveryFailure:
        if transfer.data_sent and not _is_reply(exc):
            return UncertainDelivery(
                f"the SMTP server at {self.server} did not answer once the whole "
                f"email was sent ({_describe(exc)}); not sent again, as the email "
                "may have been delivered"
            )
        if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
            return _refused(exc, transfer.recipient)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return _by_code(
                exc.code, f"the SMTP server at {self.server} replied {exc.code} "
                f"{exc.message}"
            )  # fmt: skip
        return TransientFailure(
            f"cannot deliver to the SMTP server at {self.server}: {_describe(exc)}"
        )


class _Transfer:
    """One SMTP conversation, and how far it got: ``data_sent`` once the end of
    the data is on its way, ``reply`` once the server accepted the email."""

    def __init__(
        self, client: aiosmtplib.SMTP, sender: str, recipient: str, server: str
    ) -> None:
        self.client = client
        self.sender = sender
        self.recipient = recipient
        self.server = server
        self.data_sent = False
        self.reply: str | None = None

    async def run(self, message: EmailMessage) -> str:
        """Send ``message``; returns the server's answer to it."""
        client = self.client
        # Greeting, EHLO, and STARTTLS when the server offers it.
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        utf8 = not f"{self.sender}{self.recipient}".isascii()
        if utf8 and not client.supports_extension("smtputf8"):
            raise PermanentFailure(
                f"the SMTP server at {self.server} does not support SMTPUTF8, "
                f"which the address {self.recipient!r} needs"
            )
        eight_bit = client.supports_extension("8bitmime")
        options = ["SMTPUTF8"] * utf8 + ["BODY=8BITMIME"] * eight_bit
        encoding = "utf-8" if utf8 else "ascii"
        await client.mail(self.sender, options=options, encoding=encoding)
        await client.rcpt(self.recipient, encoding=encoding)
        reply = await self._data(_data_block(message, utf8=utf8, eight_bit=eight_bit))
        await client.quit()
        return reply

    async def _data(self, block: bytes) -> str:
        """DATA, then the email; the moment it is written is the point of no
        return, which aiosmtplib's ``data`` does not tell apart."""
        start = await self.client.execute_command(b"DATA")
        if start.code != SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = self.client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("the connection was lost")
        protocol.write(block)
        self.data_sent = True
        answer = await protocol.read_response(timeout=self.client.timeout)
        if answer.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(answer.code, answer.message)
        self.reply = answer.message
        return answer.message


def _data_block(message: EmailMessage, *, utf8: bool, eight_bit: bool) -> bytes:
    """``message`` as sent after DATA: CRLF lines, leading dots doubled, and
    the closing dot; in 7 bits for a server without 8BITMIME."""
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    if not eight_bit:
        policy = policy.clone(cte_type="7bit")
    # set_content ends the body with a line break, so the closing dot starts a line.
    return _LEADING_DOT.sub(b"..", message.as_bytes(policy=policy)) + b".\r\n"


def _is_reply(exc: Exception) -> bool:
    """Whether ``exc`` carries the server's answer, rather than its absence."""
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 400 <= exc.code < 600


def _refused(exc: aiosmtplib.SMTPRecipientRefused, address: str) -> DeliveryFailure:
    reason = (
        f"the SMTP server refused the recipient {address!r}: {exc.code} {exc.message}"
    )
    if 400 <= exc.code < 500:
        return TransientFailure(reason)
    return PermanentFailure(reason)


def _by_code(code: int, reason: str) -> DeliveryFailure:
    return PermanentFailure(reason) if 500 <= code < 600 else TransientFailure(reason)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return text or type(exc).__name__
