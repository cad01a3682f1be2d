"""The mail sink run as its own process, sent real SMTP, read through Mailbox."""

from __future__ import annotations

import contextlib
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from harness.mailbox import Mailbox, MailboxError, MailboxTimeout
from harness.mailsink import main

REPO_ROOT = Path(__file__).resolve().parents[2]
SENDER = "noreply@campus.test"


@dataclass(frozen=True)
class RunningSink:
    process: subprocess.Popen[bytes]
    smtp_port: int
    http_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _sink_argv(smtp_port: int, http_port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "harness.mailsink", "--host", "127.0.0.1"),
        *("--smtp-port", str(smtp_port), "--http-port", str(http_port)),
    ]


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=10)


def _await_healthy(sink: RunningSink, timeout_s: float) -> None:
    url = f"{sink.base_url}/healthz"
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0) as client:
        while True:
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return
                last_error = f"status {response.status_code}"
            except httpx.TransportError as exc:
                last_error = repr(exc)
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"GET {url} did not answer 200 within {timeout_s}s "
                    f"(last error: {last_error}); log:\n{sink.log()}"
                )
            # Waiting on the process paces the polls and notices a crash at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = sink.process.wait(timeout=0.05)
                pytest.fail(
                    f"mail sink exited with {code} before {url} answered; "
                    f"log:\n{sink.log()}"
                )


def _start_sink(log_path: Path) -> RunningSink:
    smtp_port, http_port = _free_ports(2)
    argv = _sink_argv(smtp_port, http_port)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    sink = RunningSink(process, smtp_port, http_port, log_path)
    try:
        _await_healthy(sink, timeout_s=20.0)
    except BaseException:
        _stop(process)
        raise
    return sink


@pytest.fixture(scope="module")
def mail_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSink]:
    sink = _start_sink(tmp_path_factory.mktemp("mailsink") / "mailsink.log")
    yield sink
    _stop(sink.process)


@pytest.fixture
def mailbox(mail_sink: RunningSink) -> Iterator[Mailbox]:
    with Mailbox(mail_sink.base_url) as mailbox:
        mailbox.clear()
        yield mailbox


def _plain(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Campus <{SENDER}>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def _send(
    sink: RunningSink, message: EmailMessage, to_addrs: list[str] | None = None
) -> None:
    with smtplib.SMTP(
        "127.0.0.1", sink.smtp_port, local_hostname="localhost", timeout=5
    ) as smtp:
        smtp.send_message(message, to_addrs=to_addrs)


def test_mailbox_plain_text_message_arrives_exactly(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    _send(mail_sink, _plain("Ann <ann@example.org>", "Welcome", "Hello Ann,\nhi.\n"))

    [message] = mailbox.wait_for(to="ann@example.org")

    assert message.mail_from == SENDER
    assert message.rcpt_tos == ("ann@example.org",)
    assert message.subject == "Welcome"
    assert message.sender == f"Campus <{SENDER}>"
    assert message.to == "Ann <ann@example.org>"
    assert message.body == "Hello Ann,\nhi.\n"
    assert message.header("subject") == "Welcome"
    assert ("To", "Ann <ann@example.org>") in message.headers
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message.received_at)
    assert mailbox.messages() == [message]
    assert mailbox.get(message.id) == message


def test_mailbox_multipart_message_body_is_text_part(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    message = _plain("bob@example.org", "Your program", "Plain words.\n")
    message.add_alternative("<p>Rich words.</p>\n", subtype="html")
    _send(mail_sink, message)

    [received] = mailbox.wait_for(to="bob@example.org")

    assert received.body == "Plain words.\n"
    assert received.subject == "Your program"
    assert (received.header("Content-Type") or "").startswith("multipart/alternative")


def test_mailbox_messages_filter_to_ignores_case(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    _send(mail_sink, _plain("Carol@Example.ORG", "For Carol", "c\n"))
    _send(mail_sink, _plain("dan@example.org", "For Dan", "d\n"))
    mailbox.wait_for(count=2)

    subjects = [message.subject for message in mailbox.messages(to="CAROL@example.org")]

    assert subjects == ["For Carol"]


def test_mailbox_messages_filter_to_matches_envelope_recipient(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    message = _plain("erin@example.org", "Copied", "e\n")
    _send(mail_sink, message, to_addrs=["erin@example.org", "Hidden@Example.org"])

    [received] = mailbox.wait_for(to="hidden@example.org")

    assert received.rcpt_tos == ("erin@example.org", "Hidden@Example.org")
    assert received.to == "erin@example.org"


def test_mailbox_messages_filter_subject_matches_substring(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    _send(mail_sink, _plain("fay@example.org", "Certificate issued: Python", "f\n"))
    _send(mail_sink, _plain("fay@example.org", "Welcome", "f\n"))
    mailbox.wait_for(count=2)

    found = mailbox.messages(to="fay@example.org", subject="Certificate")

    assert [message.subject for message in found] == ["Certificate issued: Python"]
    assert mailbox.messages(subject="certificate") == []


def test_mailbox_get_unknown_id_raises_not_found(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    url = f"{mail_sink.base_url}/messages/no-such-id"

    with pytest.raises(MailboxError) as caught:
        mailbox.get("no-such-id")

    assert caught.value.status_code == 404
    assert caught.value.url == url
    assert str(caught.value) == (
        f"GET {url} returned 404: no message with id 'no-such-id'"
    )


def test_mailsink_unknown_id_answers_problem_json(mail_sink: RunningSink) -> None:
    response = httpx.get(f"{mail_sink.base_url}/messages/abc123")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no message with id 'abc123'",
    }


def test_mailsink_healthz_answers_ok(mail_sink: RunningSink) -> None:
    response = httpx.get(f"{mail_sink.base_url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_mailbox_clear_empties_sink(mail_sink: RunningSink, mailbox: Mailbox) -> None:
    _send(mail_sink, _plain("gus@example.org", "One", "1\n"))
    mailbox.wait_for(to="gus@example.org")

    mailbox.clear()

    assert mailbox.messages() == []


def test_mailbox_clear_to_keeps_other_recipients(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    _send(mail_sink, _plain("hal@example.org", "For Hal", "h\n"))
    _send(mail_sink, _plain("ivy@example.org", "For Ivy", "i\n"))
    mailbox.wait_for(count=2)

    mailbox.clear(to="HAL@example.org")

    assert [message.subject for message in mailbox.messages()] == ["For Ivy"]


def test_mailbox_wait_for_returns_when_mail_arrives(mail_sink: RunningSink) -> None:
    polls: list[httpx.Response] = []

    def send_after_first_poll(response: httpx.Response) -> None:
        if response.request.method == "GET":
            polls.append(response)
            if len(polls) == 1:
                _send(mail_sink, _plain("jo@example.org", "Late", "l\n"))

    client = httpx.Client(event_hooks={"response": [send_after_first_poll]})
    with client, Mailbox(mail_sink.base_url, client=client) as mailbox:
        mailbox.clear()

        found = mailbox.wait_for(to="jo@example.org", timeout_s=10.0, interval_s=0.02)

    assert [message.subject for message in found] == ["Late"]
    assert [poll.json()["messages"] == [] for poll in polls] == [True, False]


def test_mailbox_wait_for_timeout_names_filter_count_and_polls(
    mail_sink: RunningSink, mailbox: Mailbox
) -> None:
    _send(mail_sink, _plain("kim@example.org", "Welcome", "k\n"))
    mailbox.wait_for(to="kim@example.org")

    with pytest.raises(MailboxTimeout) as caught:
        mailbox.wait_for(
            to="nobody@example.org",
            subject="Welcome",
            count=2,
            timeout_s=0.5,
            interval_s=0.05,
        )

    text = str(caught.value)
    polls = re.search(r": (\d+) poll\(s\)", text)
    assert polls is not None
    assert int(polls.group(1)) >= 2
    assert isinstance(caught.value, AssertionError)
    assert text == (
        "waited 0.5s for 2 message(s) matching to='nobody@example.org' and "
        f"subject containing 'Welcome' at {mail_sink.base_url}: "
        f"{polls.group(1)} poll(s), the last found 0\n"
        "the sink holds 1 message(s):\n"
        "  - to ['kim@example.org'] (To: 'kim@example.org'), subject 'Welcome'"
    )


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"]
)
def test_mailsink_signal_exits_zero(tmp_path: Path, signum: signal.Signals) -> None:
    sink = _start_sink(tmp_path / "mailsink.log")

    sink.process.send_signal(signum)

    try:
        code = sink.process.wait(timeout=10)
    finally:
        _stop(sink.process)
    assert code == 0
    assert (
        f"mail sink listening: SMTP on 127.0.0.1:{sink.smtp_port}, "
        f"HTTP on http://127.0.0.1:{sink.http_port}"
    ) in sink.log()


def test_mailsink_port_in_use_exits_one() -> None:
    [http_port] = _free_ports(1)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        smtp_port = taken.getsockname()[1]
        done = subprocess.run(
            _sink_argv(smtp_port, http_port),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert done.returncode == 1
    assert f"cannot listen for SMTP on 127.0.0.1:{smtp_port}" in done.stderr


def test_mailsink_main_rejects_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--smtp-port", "70000"])

    assert caught.value.code == 2
    assert (
        "argument --smtp-port: not a TCP port number: '70000'"
        in capsys.readouterr().err
    )
