"""Which headers cross the gateway, and request ids."""

from __future__ import annotations

import re

import pytest

from services.gateway.headers import request_id, response_headers, split_request_headers


def test_split_request_headers_strips_identity_and_hop_by_hop() -> None:
    incoming = split_request_headers(
        [
            (b"host", b"gateway:8000"),
            (b"X-User-Id", b"forged"),
            (b"x-user-roles", b"admin"),
            (b"X-Campus-Anything", b"1"),
            (b"x-campus-", b"1"),
            (b"connection", b"keep-alive, X-Private-Hop"),
            (b"x-private-hop", b"secret"),
            (b"keep-alive", b"timeout=5"),
            (b"transfer-encoding", b"chunked"),
            (b"te", b"trailers"),
            (b"upgrade", b"websocket"),
            (b"proxy-authorization", b"Basic x"),
            (b"content-length", b"12"),
            (b"x-forwarded-for", b"6.6.6.6"),
            (b"x-request-id", b"abc"),
            (b"authorization", b"Bearer t"),
            (b"content-type", b"application/json"),
            (b"X-Campus", b"not-a-prefix-match"),
        ]
    )

    assert incoming.forward == [
        ("authorization", "Bearer t"),
        ("content-type", "application/json"),
        ("x-campus", "not-a-prefix-match"),
    ]
    assert incoming.authorization == "Bearer t"
    assert incoming.request_id == "abc"
    assert incoming.host == "gateway:8000"


def test_response_headers_drop_what_the_server_sets() -> None:
    kept = response_headers(
        [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"2"),
            (b"Date", b"yesterday"),
            (b"Server", b"uvicorn"),
            (b"Connection", b"close, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-Request-ID", b"upstream-made-this"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ]
    )

    assert kept == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


@pytest.mark.parametrize("sane", ["a", "A-z_0.9", "x" * 128, "9f8e7d6c"])
def test_request_id_keeps_sane_ids(sane: str) -> None:
    assert request_id(sane) == sane


@pytest.mark.parametrize(
    "insane", [None, "", "x" * 129, "with space", "a/b", "ünï", "a\nb", "a\n"]
)
def test_request_id_replaces_insane_ids(insane: str | None) -> None:
    generated = request_id(insane)

    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert generated != request_id(insane)
