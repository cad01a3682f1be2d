"""One email over SMTP, against real servers: what counts as a transient
failure, what as a permanent one, and what leaves the email's fate unknown."""

from __future__ import annotations

import email
import email.policy
import socket
import uuid
from dataclasses import dataclass

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from notifications_testkit import (
    SinkProcess,
    SlowSmtp,
    free_port,
    new_address,
    start_smtp,
)

from harness.mailbox import Mailbox
from services.notifications.delivery import Attempt
from services.notifications.errors import (
    PermanentFailure,
    TransientFailure,
    UncertainDelivery,
)
from services.notifications.mailer import Mailer

pytestmark = pytest.mark.anyio


def attempt(to_email: str, to_name: str = "Ann Lee", body: str = "Body.\n") -> Attempt:
    return Attempt(uuid.uuid4(), 1, to_email, to_name, "Subject", body)


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
    controller = start_smtp(DataReply(reply))
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


@dataclass
class NoGoodbye:
    """Accepts every email, then refuses to say goodbye."""

    async def handle_QUIT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        return "554 5.0.0 not leaving"


async def test_send_keeps_lines_that_start_with_a_dot(mail_sink: SinkProcess):
    email = new_address()
    mailer = Mailer("127.0.0.1", mail_sink.smtp_port, "noreply@campus.test", 5.0)

    await mailer.send(attempt(email, body="Dear Ann,\n.\n..and a dot.\n"))

    with Mailbox(mail_sink.url) as mailbox:
        [mail] = mailbox.messages(to=email)
    assert mail.body == "Dear Ann,\n.\n..and a dot.\n"


async def test_send_to_an_international_domain_needs_smtputf8(mail_sink: SinkProcess):
    mailer = Mailer("127.0.0.1", mail_sink.smtp_port, "noreply@campus.test", 5.0)

    with pytest.raises(PermanentFailure) as raised:
        await mailer.send(attempt("ann@exämple.org"))

    assert str(raised.value) == (
        f"the SMTP server at 127.0.0.1:{mail_sink.smtp_port} does not support "
        "SMTPUTF8, which the address 'ann@exämple.org' needs"
    )


async def test_send_to_an_international_domain_over_smtputf8():
    server = SlowSmtp(stage=None)
    controller = start_smtp(server, enable_SMTPUTF8=True)
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 5.0)
        await mailer.send(attempt("ann@exämple.org"))
    finally:
        controller.stop()

    [envelope] = server.stored
    assert envelope.rcpt_tos == ["ann@exämple.org"]
    assert "SMTPUTF8" in envelope.mail_options
    assert "To: Ann Lee <ann@exämple.org>\r\n" in envelope.content.decode()


async def test_send_answered_after_the_timeout_is_uncertain():
    server = SlowSmtp(stage="DATA")
    controller = start_smtp(server)
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 0.5)
        with pytest.raises(UncertainDelivery) as raised:
            await mailer.send(attempt(new_address()))
    finally:
        server.answer()
        controller.stop()

    assert len(server.stored) == 1
    assert str(raised.value) == (
        f"the SMTP server at 127.0.0.1:{controller.port} did not answer once the "
        "whole email was sent (timed out); not sent again, as the email may have "
        "been delivered"
    )


async def test_send_cut_off_after_the_data_is_uncertain():
    server = SlowSmtp(stage="DATA", hang_up=True)
    controller = start_smtp(server)
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 5.0)
        with pytest.raises(UncertainDelivery) as raised:
            await mailer.send(attempt(new_address()))
    finally:
        controller.stop()

    assert len(server.stored) == 1
    assert str(raised.value).startswith(
        f"the SMTP server at 127.0.0.1:{controller.port} did not answer once the "
        "whole email was sent ("
    )


@pytest.mark.parametrize("hang_up", [False, True], ids=["late", "cut off"])
async def test_send_failing_before_the_data_stays_transient(hang_up: bool):
    server = SlowSmtp(stage="RCPT", hang_up=hang_up)
    controller = start_smtp(server)
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 0.5)
        with pytest.raises(TransientFailure) as raised:
            await mailer.send(attempt(new_address()))
    finally:
        server.answer()
        controller.stop()

    assert server.held == 1
    assert server.stored == []
    assert str(raised.value).startswith(
        f"cannot deliver to the SMTP server at 127.0.0.1:{controller.port}: "
    )


async def test_send_accepted_counts_though_the_goodbye_fails():
    controller = start_smtp(NoGoodbye())
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 5.0)
        reply = await mailer.send(attempt(new_address()))
    finally:
        controller.stop()

    assert reply == "OK"


async def test_send_to_a_server_without_8bitmime_goes_in_7_bits():
    server = SlowSmtp(stage=None)
    controller = start_smtp(server, decode_data=True)
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 5.0)
        await mailer.send(attempt(new_address(), body="Grüße, Zoë.\n.\n"))
    finally:
        controller.stop()

    [envelope] = server.stored
    received = email.message_from_string(envelope.content, policy=email.policy.SMTP)
    assert envelope.content.isascii()
    assert "BODY=8BITMIME" not in envelope.mail_options
    assert received.get_content() == "Grüße, Zoë.\n.\n"


@dataclass
class NoRecipients:
    """Says yes to every recipient but keeps none, so DATA is refused."""

    async def handle_RCPT(  # noqa: N802
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        return "250 OK"


async def test_send_refused_at_the_data_command_is_permanent():
    controller = start_smtp(NoRecipients())
    try:
        mailer = Mailer("127.0.0.1", controller.port, "noreply@campus.test", 5.0)
        with pytest.raises(PermanentFailure) as raised:
            await mailer.send(attempt(new_address()))
    finally:
        controller.stop()

    assert str(raised.value) == (
        f"the SMTP server at 127.0.0.1:{controller.port} replied 503 "
        "Error: need RCPT command"
    )
