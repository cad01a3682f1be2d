"""Rate limits and abuse protection at the gateway, end to end.

The limits are the stack's own: the gateway's GATEWAY_POLICIES in the
topology (services/stack.toml), read here so that every header can be
asserted exactly. They are set well above what the rest of the suite spends
on shared keys (every scenario's client address is 127.0.0.1, and every
scenario shares the admin user), so these tests never spend the shared
budgets; they use keys of their own instead:

- per-user limits: a freshly registered user per test;
- per-address limits: the stack's gateway trusts 127.0.0.1 as a proxy
  (GATEWAY_TRUSTED_PROXIES), so a test stands for a client behind that proxy
  by sending X-Forwarded-For with a random address of its own; and it stands
  for an untrusted client by connecting from a loopback address of its own
  (127.x.y.z), whose X-Forwarded-For must count for nothing.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import allure
import httpx
import pytest

from harness.config import find_config
from harness.endpoints import Endpoints

pytestmark = [
    allure.epic("Service contracts"),
    allure.feature("Gateway: rate limits and abuse protection"),
]

PASSWORD = "correct horse 42 battery"
ME = "/api/v1/users/me"
MAX_PROBES = 40  # waves of requests before giving up on exhausting a budget


@pytest.fixture(scope="module")
def gateway_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment the stack's gateway runs with."""
    topology = find_config(request.config.rootpath).topology()
    return dict(topology["gateway"].env)


@pytest.fixture(scope="module")
def limits(gateway_env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Policy name -> (limit, window_s), as the stack's gateway applies them."""
    found = re.findall(r"([a-z-]+)=(\d+)/(\d+)", gateway_env["GATEWAY_POLICIES"])
    return {name: (int(limit), int(window)) for name, limit, window in found}


def between(low: int, high: int) -> int:
    return low + secrets.randbelow(high - low + 1)


def fresh_ip() -> str:
    """A random address of the shared address space (100.64.0.0/10)."""
    return f"100.{between(64, 127)}.{between(0, 255)}.{between(1, 254)}"


def fresh_loopback() -> str:
    """A random loopback address other than 127.0.0.1 (the trusted proxy)."""
    return f"127.{between(1, 254)}.{between(0, 255)}.{between(1, 254)}"


def policy_header(limits: dict[str, tuple[int, int]], *names: str) -> str:
    return ", ".join(f'"{n}";q={limits[n][0]};w={limits[n][1]}' for n in names)


def remaining(answer: httpx.Response, policy: str) -> int:
    found = re.search(rf'"{policy}";r=(\d+);t=(\d+)', answer.headers["ratelimit"])
    assert found, f"no {policy} in RateLimit: {answer.headers.get('ratelimit')}"
    return int(found.group(1))


def new_user(http: httpx.Client) -> tuple[str, dict[str, str]]:
    """A fresh user's email and Authorization header."""
    email = f"limits-{uuid.uuid4().hex[:12]}@example.org"
    registered = http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Rita Rate"},
    )
    assert registered.status_code == 201, registered.text
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return email, {"Authorization": f"Bearer {login.json()['access_token']}"}


def exhaust_burst(
    http: httpx.Client, headers: dict[str, str]
) -> tuple[int, httpx.Response]:
    """Spend a user's burst budget; the count admitted, and the first 429.

    Waves of concurrent requests go out until a request sent after a whole
    wave has come back is refused: at that moment every earlier request was
    decided, so the refused answer's budgets can be checked exactly.
    """
    admitted = 0
    with ThreadPoolExecutor(16) as pool:
        for _ in range(MAX_PROBES):
            wave = list(pool.map(lambda _: http.get(ME, headers=headers), range(16)))
            admitted += sum(answer.status_code == 200 for answer in wave)
            probe = http.get(ME, headers=headers)
            if probe.status_code == 429:
                return admitted, probe
            assert probe.status_code == 200, probe.text
            admitted += 1
    raise AssertionError(f"no 429 after {admitted} admitted requests")


@allure.story("Every limited answer says what is left")
def test_rate_limit_headers_on_allowed_and_rejected_requests(
    http: httpx.Client, limits: dict[str, tuple[int, int]]
) -> None:
    _, headers = new_user(http)
    (burst, burst_s), (sustained, sustained_s) = (
        limits["user-burst"],
        limits["user-sustained"],
    )

    started = time.monotonic()
    first = http.get(ME, headers=headers)
    admitted, refused = exhaust_burst(http, headers)
    elapsed_s = time.monotonic() - started

    policy = policy_header(limits, "user-burst", "user-sustained")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == policy
    assert first.headers["ratelimit"] == (
        f'"user-burst";r={burst - 1};t={burst_s}, '
        f'"user-sustained";r={sustained - 1};t={sustained_s}'
    )
    assert "retry-after" not in first.headers
    assert refused.headers["ratelimit-policy"] == policy
    # The first request is the oldest in the sustained window: its share
    # comes back when the window has slid past it.
    reset = re.fullmatch(
        rf'"user-burst";r=0;t={burst_s}, "user-sustained";r={sustained - 1 - admitted};'
        r"t=(\d+)",
        refused.headers["ratelimit"],
    )
    assert reset, refused.headers["ratelimit"]
    assert sustained_s - elapsed_s - 1 <= int(reset.group(1)) <= sustained_s
    assert refused.headers["retry-after"] == str(burst_s)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"rate limit 'user-burst' ({burst} requests per {burst_s}s for this "
        f"user) is used up; retry in {burst_s}s",
        "policy": "user-burst",
        "retry_after_s": burst_s,
    }


@allure.story("Each client has a budget of its own")
def test_rate_limit_of_one_user_leaves_another_alone(
    http: httpx.Client, limits: dict[str, tuple[int, int]]
) -> None:
    _, greedy = new_user(http)
    _, modest = new_user(http)

    exhaust_burst(http, greedy)
    other = http.get(ME, headers=modest)

    burst, sustained = limits["user-burst"][0], limits["user-sustained"][0]
    assert other.status_code == 200
    assert remaining(other, "user-burst") == burst - 1
    assert remaining(other, "user-sustained") == sustained - 1


def refresh(client: httpx.Client, forwarded_for: str | None = None) -> httpx.Response:
    """An IP-limited request that costs the users service little (a bad token)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    answer = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": "not-a-token"}, headers=headers
    )
    assert answer.status_code == 401, answer.text
    return answer


@allure.story("Each client has a budget of its own")
def test_rate_limit_keys_clients_behind_the_proxy_by_their_address(
    http: httpx.Client, limits: dict[str, tuple[int, int]]
) -> None:
    client, other = fresh_ip(), fresh_ip()
    (burst, burst_s), (sustained, sustained_s) = (
        limits["auth-burst"],
        limits["auth-sustained"],
    )

    first = refresh(http, client)
    again = refresh(
        http, f"203.0.113.50, {client}"
    )  # the left entry is the client's word
    elsewhere = refresh(http, other)

    assert first.headers["ratelimit-policy"] == policy_header(
        limits, "auth-burst", "auth-sustained"
    )
    assert first.headers["ratelimit"] == (
        f'"auth-burst";r={burst - 1};t={burst_s}, '
        f'"auth-sustained";r={sustained - 1};t={sustained_s}'
    )
    assert remaining(again, "auth-sustained") == sustained - 2
    assert remaining(elsewhere, "auth-sustained") == sustained - 1


@allure.story("Each client has a budget of its own")
def test_rate_limit_groups_ipv6_clients_by_their_64(
    http: httpx.Client, limits: dict[str, tuple[int, int]]
) -> None:
    net = f"2001:db8:{between(0, 0xFFFF):x}:{between(0, 0xFFFF):x}"
    sustained = limits["auth-sustained"][0]

    first = refresh(http, f"{net}::1")
    neighbour = refresh(http, f"{net}:ffff:ffff:ffff:fffe")
    next_net = refresh(http, f"2001:db8:{between(0, 0xFFFF):x}::1")

    assert remaining(first, "auth-sustained") == sustained - 1
    assert remaining(neighbour, "auth-sustained") == sustained - 2
    assert remaining(next_net, "auth-sustained") == sustained - 1


@pytest.fixture
def untrusted(stack: Endpoints) -> Iterator[tuple[httpx.Client, str]]:
    """A client connecting from a loopback address of its own, and that address."""
    address = fresh_loopback()
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(
        base_url=stack["gateway"].url, transport=transport, timeout=10.0
    ) as client:
        yield client, address


@allure.story("A client cannot pass for another")
def test_rate_limit_ignores_forwarded_for_from_an_untrusted_client(
    http: httpx.Client,
    untrusted: tuple[httpx.Client, str],
    limits: dict[str, tuple[int, int]],
) -> None:
    client, address = untrusted
    sustained = limits["auth-sustained"][0]

    spoofed = [refresh(client, fresh_ip()) for _ in range(3)]
    # The trusted proxy, forwarding for that very address, shares its budget.
    forwarded = refresh(http, address)

    assert [remaining(a, "auth-sustained") for a in spoofed] == [
        sustained - 1,
        sustained - 2,
        sustained - 3,
    ]
    assert remaining(forwarded, "auth-sustained") == sustained - 4


def failed_login(http: httpx.Client, email: str, address: str) -> httpx.Response:
    return http.post(
        "/api/v1/auth/login",
        json={"email": email, "password": "not the password"},
        headers={"X-Forwarded-For": address},
    )


@allure.story("Password guessing is cut off")
def test_failed_logins_from_one_address_are_cut_off(
    http: httpx.Client, limits: dict[str, tuple[int, int]]
) -> None:
    address = fresh_ip()
    limit, window_s = limits["login-failures-ip"]

    failures = [
        failed_login(http, f"nobody-{uuid.uuid4().hex[:8]}@example.org", address)
        for _ in range(limit)
    ]
    refused = failed_login(http, "someone-else@example.org", address)

    assert [a.status_code for a in failures] == [401] * limit
    assert refused.status_code == 429
    body: dict[str, Any] = refused.json()
    assert body["policy"] == "login-failures-ip"
    assert body["detail"] == (
        f"rate limit 'login-failures-ip' ({limit} failed logins per {window_s}s for "
        f"this client address) is used up; retry in {body['retry_after_s']}s"
    )
    assert window_s - 60 <= int(refused.headers["retry-after"]) <= window_s
    # Another address is not affected.
    assert failed_login(http, "someone-else@example.org", fresh_ip()).status_code == 401


@allure.story("Password guessing is cut off")
def test_failed_logins_to_one_account_are_cut_off_even_with_the_password(
    http: httpx.Client, limits: dict[str, tuple[int, int]]
) -> None:
    email, _ = new_user(http)
    limit = limits["login-failures-account"][0]

    failures = [failed_login(http, email, fresh_ip()) for _ in range(limit)]
    right = http.post(
        "/api/v1/auth/login",
        json={"email": email.upper(), "password": PASSWORD},
        headers={"X-Forwarded-For": fresh_ip()},
    )

    assert [a.status_code for a in failures] == [401] * limit
    assert right.status_code == 429
    assert right.json()["policy"] == "login-failures-account"
    assert "email" in right.json()["detail"]
    assert email not in right.text


@allure.story("Oversized and slow requests are refused")
def test_body_over_the_route_limit_gets_413(http: httpx.Client) -> None:
    _, headers = new_user(http)
    body = b'{"refresh_token": "' + b"x" * 17_000 + b'"}'

    login = http.post(
        "/api/v1/auth/login",
        content=body,
        headers={"Content-Type": "application/json", "X-Forwarded-For": fresh_ip()},
    )
    logout = http.post(
        "/api/v1/auth/logout",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )

    assert login.status_code == 413
    assert login.headers["content-type"] == "application/problem+json"
    assert login.json()["detail"] == "the request body is larger than 16384 bytes"
    # The same body is within the default limit of a route without its own.
    assert logout.status_code != 413


@allure.story("Oversized and slow requests are refused")
def test_slow_client_sending_headers_byte_by_byte_is_cut_off(
    stack: Endpoints, gateway_env: dict[str, str]
) -> None:
    timeout_s = float(gateway_env["GATEWAY_HEADER_TIMEOUT_S"])
    url = httpx.URL(stack["gateway"].url)
    head = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: " + b"s" * 200
    answer = b""
    sent = 0

    started = time.monotonic()
    with socket.create_connection((url.host, url.port or 80), timeout=5) as conn:
        conn.settimeout(0.05)
        for sent in range(len(head)):
            try:
                conn.sendall(head[sent : sent + 1])
                chunk = conn.recv(4096)
            except TimeoutError:
                continue  # still waiting: send the next byte
            except (BrokenPipeError, ConnectionResetError):
                break
            answer += chunk
            if not chunk:
                break
    elapsed_s = time.monotonic() - started

    assert sent < len(head) - 1, "the whole head went out: the gateway waited"
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert timeout_s <= elapsed_s < timeout_s + 5
