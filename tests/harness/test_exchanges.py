"""Redaction: what a report may show of a body, a token pair or auth headers."""

from __future__ import annotations

import json

from harness.exchanges import BODY_LIMIT, Redacted, redacted_body

TOKENS = {
    "access_token": "eyJhbGciOiJFUzI1NiJ9.e30.sig",
    "refresh_token": "refresh-secret-1",
    "expires_in": 900,
}


def test_body_shows_json_with_its_secret_fields_redacted() -> None:
    body = json.dumps({"user": {"email": "ann@campus.test", "password": "pw-12345678"},
                       "pairs": [TOKENS]}).encode()  # fmt: skip

    assert json.loads(redacted_body(body)) == {
        "user": {"email": "ann@campus.test", "password": "***"},
        "pairs": [{"access_token": "***", "refresh_token": "***", "expires_in": 900}],
    }


def test_body_for_a_message_is_one_line() -> None:
    assert redacted_body(json.dumps(TOKENS).encode(), indent=None) == (
        '{"access_token": "***", "refresh_token": "***", "expires_in": 900}'
    )


def test_body_that_is_not_json_is_shown_unless_it_may_hold_a_secret() -> None:
    assert redacted_body(b"plain words") == "plain words"
    assert redacted_body(b"token=eyJ.abc") == (
        "(not JSON; not shown in case it holds secrets)"
    )
    assert redacted_body(b"") == ""


def test_long_body_is_cut() -> None:
    text = redacted_body(json.dumps({"words": "w" * BODY_LIMIT}).encode())

    assert text.endswith("\n... (cut)")
    assert len(text) == BODY_LIMIT + len("\n... (cut)")


def test_redacted_mapping_hides_secrets_only_in_its_repr() -> None:
    pair = Redacted(TOKENS)
    headers = Redacted(Authorization="Bearer eyJ.e30.sig", Accept="*/*")

    assert repr(pair) == (
        "{'access_token': '***', 'refresh_token': '***', 'expires_in': 900}"
    )
    assert repr(headers) == "{'Authorization': '***', 'Accept': '*/*'}"
    assert f"{headers}" == repr(headers)
    assert pair == TOKENS
    assert pair["access_token"] == TOKENS["access_token"]
    assert json.loads(json.dumps(pair)) == TOKENS
