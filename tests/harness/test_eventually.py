"""The polling helper scenarios use for cross-service effects."""

from __future__ import annotations

import itertools

import pytest

from harness.eventually import EventuallyTimeout, eventually


def test_eventually_returns_first_value_that_satisfies() -> None:
    counter = itertools.count()

    value = eventually(lambda: next(counter), until=lambda n: n >= 3, interval_s=0)

    assert value == 3


def test_eventually_treats_errors_as_not_yet() -> None:
    attempts = iter([ConnectionError("refused"), ConnectionError("refused"), "up"])

    def probe() -> str:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert eventually(probe, interval_s=0) == "up"


def test_eventually_timeout_reports_last_value_and_polls() -> None:
    with pytest.raises(EventuallyTimeout) as caught:
        eventually(
            lambda: {"status": "queued"},
            until=lambda body: body["status"] == "sent",
            timeout_s=0.05,
            interval_s=0.01,
            what="the welcome email to be sent",
        )

    message = str(caught.value)
    assert message.startswith("waited 0.05s for the welcome email to be sent: ")
    assert message.endswith(" poll(s); last value: {'status': 'queued'}")
    assert caught.value.polls >= 2
    assert isinstance(caught.value, AssertionError)


def test_eventually_timeout_reports_last_error() -> None:
    def probe() -> None:
        raise ConnectionError("connection refused")

    with pytest.raises(EventuallyTimeout) as caught:
        eventually(probe, timeout_s=0, what="the gateway")

    assert str(caught.value) == (
        "waited 0s for the gateway: 1 poll(s); "
        "last error: ConnectionError('connection refused')"
    )
