"""Reading request bodies within their size limit and deadline (ASGI messages)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.gateway.bodies import ClientGone, check_declared_length, read_body
from services.gateway.errors import BodyTooLarge, RequestTimeout

Message = dict[str, Any]


def messages(
    *sent: Message, then_wait: bool = False
) -> Callable[[], Awaitable[Message]]:
    """An ASGI receive that hands out ``sent``, then waits for ever (or disconnects)."""
    queue = list(sent)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then_wait:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


def part(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_read_body_joins_the_parts() -> None:
    receive = messages(part(b"ab"), part(b"cd"), part(b"e", more=False))

    assert asyncio.run(read_body(receive, 5, 1.0)) == b"abcde"


def test_read_body_refuses_a_body_that_grows_over_the_limit() -> None:
    receive = messages(part(b"abc"), part(b"def"))

    with pytest.raises(BodyTooLarge) as caught:
        asyncio.run(read_body(receive, 5, 1.0))

    assert str(caught.value) == "the request body is larger than 5 bytes"
    assert caught.value.headers == (("connection", "close"),)


def test_read_body_refuses_a_first_part_over_the_limit() -> None:
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(messages(part(b"abcdef", more=False)), 5, 1.0))


@pytest.mark.parametrize("sent", [(), (part(b"ab"),)])
def test_read_body_notices_a_client_that_left(sent: tuple[Message, ...]) -> None:
    with pytest.raises(ClientGone):
        asyncio.run(read_body(messages(*sent), 5, 1.0))


def test_read_body_gives_up_on_a_body_that_does_not_come() -> None:
    receive = messages(part(b"ab"), then_wait=True)

    with pytest.raises(RequestTimeout) as caught:
        asyncio.run(read_body(receive, 5, 0.05))

    assert str(caught.value) == "the request body did not arrive within 0.05s"
    assert caught.value.status == 408


def test_read_body_gives_up_on_a_body_that_never_starts() -> None:
    reading = read_body(messages(then_wait=True), 5, 0.05)

    with pytest.raises(RequestTimeout) as caught:
        # A read without a deadline would wait here for ever.
        asyncio.run(asyncio.wait_for(reading, 5.0))

    assert str(caught.value) == "the request body did not arrive within 0.05s"


@pytest.mark.parametrize("declared", [None, b"5", b"nonsense"])
def test_check_declared_length_lets_through_what_is_not_over(
    declared: bytes | None,
) -> None:
    check_declared_length(declared, 5)


def test_check_declared_length_refuses_a_length_over_the_limit() -> None:
    with pytest.raises(BodyTooLarge) as caught:
        check_declared_length(b"6", 5)

    assert str(caught.value) == "the request body is larger than 5 bytes"
