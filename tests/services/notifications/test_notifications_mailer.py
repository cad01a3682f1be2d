"""One email over SMTP, against real servers: what counts as a transient
failure and what as a permanent one."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from notifications_testkit import SinkProcess, free_port, new_address

from harness.mailbox import Mailbox
from services.notifications.delivery import Attempt
from services.notifications.errors import PermanentFailure, TransientFailure
from services.notifications.mailer import Mailer

pytestmark = pytest.mark.anyio


def attempt(to_email: str, to_name: str = "Ann Lee") -> Attempt:
    return Attempt(uuid.uuid4(), 1, to_email, to_name, "Subject", "Body.\n")


@dataclass
class DataReply:
    """Accepts recipients, then answers DATA with ``reply``."""

    reply: str

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd looks up
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        return self.reply


async def test_send_delivers_with_a_unicode_name(mail_sink: SinkProcess):
    email = new_address()
    mailer = Mailer("127.0.0.1", mail_sink.smtp_port, "noreply@campus.test", 5.0)

    reply = await mailer.send(attempt(email, "Zoë Ångström"))

    with Mailbox(mail_sink.url) as mailbox:
        [mail] = mailbox.messages(to=email)
    assert reply == "Message accepted for delivery"
    assert mail.to == f"Zoë Ångström <{email}>"
    assert mail.sender == "noreply@campus.test"
    assert mail.body == "Body.\n"


async def test_send_to_unusable_address_is_permanent(mail_sink: SinkProcess):
    mailer = Mailer("127.0.0.1", mail_sink.smtp_port, "noreply@campus.test", 5.0)

    with pytest.raises(PermanentFailure) as raised:
        await mailer.send(attempt("ann@example.org\r\nBcc: eve@example.org"))

    assert str(raised.value).startswith(
        "the email to 'ann@example.org\\r\\nBcc: eve@example.org' cannot be built: "
    )


@pytest.mark.parametrize(
    ("reply", "kind"),
    [("554 5.6.0 message refused", PermanentFailure),
     ("421 4.3.2 shutting down", TransientFailure)],
)  # fmt: skip
async def test_send_refused_at_data_is_classified_by_code(
    reply: str, kind: type[Exception]
):
    controller = Controller(DataReply(reply), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 5.0)
        with pytest.raises(kind) as raised:
            await mailer.send(attempt(new_address()))
    finally:
        controller.stop()

    code, _, text = reply.partition(" ")
    assert str(raised.value) == (
        f"the SMTP server at 127.0.0.1:{controller.port} replied {code} {text}"
    )


async def test_send_to_silent_server_times_out_transiently():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        mailer = Mailer("127.0.0.1", port, "noreply@campus.test", 0.3)
        with pytest.raises(TransientFailure) as raised:
            await mailer.send(attempt(new_address()))

    assert str(raised.value).startswith(
        f"cannot deliver to the SMTP server at 127.0.0.1:{port}: "
    )


async def test_send_to_closed_port_is_transient():
    port = free_port()
    mailer = Mailer("127.0.0.1", port, "noreply@campus.test", 5.0)

    with pytest.raises(TransientFailure) as raised:
        await mailer.send(attempt(new_address()))

    assert f"cannot deliver to the SMTP server at 127.0.0.1:{port}: " in str(
        raised.value
    )
