"""The HTTP protocol's deadline for request heads, under a real uvicorn."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from gateway_testkit import EchoApp, serving

from services.gateway import server
from services.gateway.server import GatewayHttpProtocol

HEAD = b"GET /api/v1/open HTTP/1.1\r\nHost: gateway\r\nX-Padding: " + b"p" * 64
REQUEST = b"GET /api/v1/open HTTP/1.1\r\nHost: gateway\r\n\r\n"
TIMEOUT_S = 0.3


class QuickProtocol(GatewayHttpProtocol):
    header_timeout_s = TIMEOUT_S


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    with serving(EchoApp("upstream"), http=QuickProtocol) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def read_response(conn: socket.socket) -> bytes:
    """One chunked response (the echo app sends no Content-Length)."""
    answer = b""
    while not answer.endswith(b"0\r\n\r\n"):
        chunk = conn.recv(65536)
        assert chunk, f"the connection closed after {answer!r}"
        answer += chunk
    return answer


def drip(conn: socket.socket, data: bytes, interval_s: float) -> tuple[int, bytes]:
    """Send ``data`` a byte at a time until the server closes; bytes sent, answer."""
    conn.settimeout(interval_s)
    answer = b""
    for sent in range(len(data)):
        try:
            conn.sendall(data[sent : sent + 1])
            chunk = conn.recv(4096)
        except TimeoutError:
            continue  # the server is still waiting: next byte
        except (BrokenPipeError, ConnectionResetError):
            return sent, answer
        answer += chunk
        if not chunk or answer.endswith(b"}"):
            return sent, answer
    return len(data), answer


def test_server_cuts_off_a_head_sent_byte_by_byte(address: tuple[str, int]) -> None:
    before = server.HEADER_TIMEOUTS.value
    started = time.monotonic()

    with socket.create_connection(address, timeout=5) as conn:
        sent, answer = drip(conn, HEAD, interval_s=0.02)
    elapsed_s = time.monotonic() - started

    assert sent < len(HEAD)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in answer
    assert answer.endswith(b'"detail": "the request head did not arrive within 0.3s"}')
    assert TIMEOUT_S <= elapsed_s < TIMEOUT_S + 2.0
    assert server.HEADER_TIMEOUTS.value == before + 1


def test_server_closes_a_connection_that_sends_nothing(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address, timeout=5) as conn:
        started = time.monotonic()
        answer = conn.recv(4096)
        elapsed_s = time.monotonic() - started

    assert answer == b""
    assert TIMEOUT_S <= elapsed_s < TIMEOUT_S + 2.0


def test_server_keeps_an_idle_keep_alive_connection_for_the_next_request(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(REQUEST)
        first = read_response(conn)
        conn.settimeout(TIMEOUT_S * 2)
        with pytest.raises(TimeoutError):
            conn.recv(1)  # idle past the head deadline: nothing happens
        conn.settimeout(5)
        conn.sendall(REQUEST)
        second = read_response(conn)

    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert second.startswith(b"HTTP/1.1 200 OK\r\n")


def test_server_cuts_off_a_slow_head_after_a_good_request(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(REQUEST)
        first = read_response(conn)
        sent, answer = drip(conn, HEAD, interval_s=0.02)

    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert sent < len(HEAD)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_server_serves_a_head_that_arrives_in_pieces_in_time(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(REQUEST[:10])
        conn.sendall(REQUEST[10:])
        answer = read_response(conn)

    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
