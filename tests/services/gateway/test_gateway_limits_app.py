"""Rate limits and abuse protection through a real gateway, with a real Redis."""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest
import redis as redis_sync
from gateway_testkit import (
    CLOSED_REDIS,
    LIMITED_ROUTES,
    EchoApp,
    GatewayFactory,
    RedisServer,
    SigningKey,
)

from services.common.logs import REQUEST_LOGGER
from services.gateway.app import Gateway
from services.gateway.client_ip import parse_networks

POLICY = '"burst";q=3;w=1, "sustained";q=5;w=60'


def bearer(signing_key: SigningKey, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {signing_key.sign(sub=sub)}"}


def test_limits_headers_on_allowed_and_rejected_requests(
    gateway: GatewayFactory, redis: RedisServer, signing_key: SigningKey
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)
    headers = bearer(signing_key, "ann")

    answers = [client.get("/api/v1/users/me", headers=headers) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert {a.headers["ratelimit-policy"] for a in answers} == {POLICY}
    assert [a.headers["ratelimit"] for a in answers] == [
        '"burst";r=2;t=1, "sustained";r=4;t=60',
        '"burst";r=1;t=1, "sustained";r=3;t=60',
        '"burst";r=0;t=1, "sustained";r=2;t=60',
        '"burst";r=0;t=1, "sustained";r=2;t=60',
    ]
    rejected = answers[3]
    assert rejected.headers["retry-after"] == "1"
    assert rejected.headers["content-type"] == "application/problem+json"
    assert rejected.json() == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "rate limit 'burst' (3 requests per 1s for this user) is used up; "
        "retry in 1s",
        "policy": "burst",
        "retry_after_s": 1,
    }
    assert "retry-after" not in answers[0].headers


def test_limits_one_users_exhaustion_leaves_another_alone(
    gateway: GatewayFactory, redis: RedisServer, signing_key: SigningKey
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)
    for _ in range(4):
        client.get("/api/v1/users/me", headers=bearer(signing_key, "greedy"))

    other = client.get("/api/v1/users/me", headers=bearer(signing_key, "modest"))

    assert other.status_code == 200
    assert other.headers["ratelimit"] == '"burst";r=2;t=1, "sustained";r=4;t=60'


def test_limits_policy_is_advertised_before_authentication(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)

    anonymous = client.get("/api/v1/users/me")
    unlimited = client.get("/api/v1/free")

    assert anonymous.status_code == 401
    assert anonymous.headers["ratelimit-policy"] == POLICY
    assert "ratelimit" not in anonymous.headers
    assert "ratelimit-policy" not in unlimited.headers


def test_limits_ignore_forwarded_for_from_untrusted_clients(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)

    answers = [
        client.get("/api/v1/open", headers={"X-Forwarded-For": f"198.51.100.{n}"})
        for n in range(5)
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert answers[4].json()["detail"] == (
        "rate limit 'by-ip' (4 requests per 60s for this client address) is used "
        "up; retry in 60s"
    )


def test_limits_believe_forwarded_for_from_trusted_proxies(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    client = gateway(
        routes=LIMITED_ROUTES,
        redis_url=redis.url,
        trusted_proxies=parse_networks("127.0.0.1"),
    )

    spent = [
        client.get("/api/v1/open", headers={"X-Forwarded-For": "198.51.100.1"})
        for _ in range(5)
    ]
    other = client.get(
        "/api/v1/open", headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.2"}
    )

    assert [a.status_code for a in spent] == [200, 200, 200, 200, 429]
    assert other.status_code == 200
    assert other.headers["ratelimit"] == '"by-ip";r=3;t=60'
    seen = other.json()["headers"]
    assert ["x-forwarded-for", "1.2.3.4, 198.51.100.2, 127.0.0.1"] in seen


def test_limits_without_redis_fail_open_or_closed_per_route(
    gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=CLOSED_REDIS)
    app = gateway.apps[0]  # type: ignore[attr-defined]

    open_route = client.get("/api/v1/open")
    closed_route = client.get("/api/v1/closed")

    assert open_route.status_code == 200
    assert open_route.headers["ratelimit"] == '"by-ip";r=3;t=60'
    assert closed_route.status_code == 503
    assert closed_route.headers["retry-after"] == "1"
    assert closed_route.headers["ratelimit-policy"] == '"by-ip";q=4;w=60'
    assert closed_route.json()["detail"] == (
        "rate limits cannot be checked right now and this route does not run "
        "without them; retry in 1s"
    )
    assert (
        app.metrics.value(
            "gateway_ratelimit_decisions_total", source="local", outcome="allowed"
        )
        == 1
    )
    assert app.metrics.value("gateway_ratelimit_failed_closed_total") == 1
    assert any("rate limits decided without Redis" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_metrics_count_answers_and_fallback_decisions(
    gateway: GatewayFactory,
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=CLOSED_REDIS)
    client.get("/api/v1/open")
    client.get("/api/v1/closed")

    answer = client.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = answer.text.splitlines()
    assert "# TYPE gateway_requests_total counter" in lines
    assert (
        'gateway_requests_total{method="GET",route="/api/v1/open",status="200"} 1'
        in lines
    )
    assert (
        'gateway_requests_total{method="GET",route="/api/v1/closed",status="503"} 1'
        in lines
    )
    assert (
        'gateway_ratelimit_decisions_total{outcome="allowed",source="local"} 1' in lines
    )
    assert "gateway_ratelimit_failed_closed_total 1" in lines


def login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )


def test_limits_failed_logins_per_account_answer_early(
    gateway: GatewayFactory, redis: RedisServer, users: tuple[EchoApp, str]
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)

    failures = [login(client, "Ann@Example.org", "wrong") for _ in range(2)]
    blocked = login(client, "ann@example.org ", "right")
    other = login(client, "bob@example.org", "right")

    assert [a.status_code for a in failures] == [401, 401]
    assert blocked.status_code == 429
    assert blocked.json()["policy"] == "fail-account"
    assert blocked.json()["detail"].startswith(
        "rate limit 'fail-account' (2 failed logins per 60s for this email)"
    )
    assert int(blocked.headers["retry-after"]) in range(58, 61)
    assert other.status_code == 200
    # The blocked attempt never reached the users service.
    assert len(users[0].received) == 3


def test_limits_failed_logins_per_address_count_only_401(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)

    successes = [login(client, f"ok{n}@example.org", "right") for n in range(5)]
    failures = [login(client, f"x{n}@example.org", "wrong") for n in range(4)]

    assert [a.status_code for a in successes] == [200] * 5
    assert [a.status_code for a in failures] == [401, 401, 401, 429]
    assert failures[3].json()["policy"] == "fail-ip"


def test_limits_failed_logins_are_given_back_when_upstream_fails(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    client = gateway(
        routes=LIMITED_ROUTES,
        redis_url=redis.url,
        upstreams={"users": (dead,), "competency": (dead,)},
    )

    answers = [login(client, "a@example.org", "wrong") for _ in range(4)]

    assert [a.status_code for a in answers] == [503] * 4


def test_body_limit_is_per_route(gateway: GatewayFactory, redis: RedisServer) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)

    declared = client.post("/api/v1/open", content=b"x" * 17)
    streamed = client.post("/api/v1/open", content=iter([b"x" * 10, b"y" * 10]))
    default_limit = client.post("/api/v1/free", content=b"x" * 17)

    assert declared.status_code == 413
    assert declared.json()["detail"] == "the request body is larger than 16 bytes"
    assert declared.headers["connection"] == "close"
    assert streamed.status_code == 413
    assert default_limit.status_code == 200


def test_body_that_arrives_too_slowly_gets_408(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url, body_timeout_s=0.3)
    app = gateway.apps[0]  # type: ignore[attr-defined]
    host, port = str(client.base_url.host), client.base_url.port
    assert port is not None

    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(
            b"POST /api/v1/free HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345"
        )
        answer = _read_all(conn)

    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close" in answer.lower()
    assert answer.endswith(b'"detail": "the request body did not arrive within 0.3s"}')
    assert app.metrics.value("gateway_body_timeouts_total") == 1


def test_body_announced_but_never_sent_gets_408_and_frees_its_place(
    gateway: GatewayFactory,
) -> None:
    client = gateway(routes=LIMITED_ROUTES, body_timeout_s=0.3, max_in_flight=1)
    app: Gateway = gateway.apps[0]  # type: ignore[attr-defined]
    host, port = str(client.base_url.host), client.base_url.port
    assert port is not None

    with socket.create_connection((host, port), timeout=5) as conn:
        started = time.monotonic()
        conn.sendall(
            b"POST /api/v1/free HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
        )
        answer = _read_all(conn)
        waited_s = time.monotonic() - started
    after = client.get("/api/v1/free")

    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b'"detail": "the request body did not arrive within 0.3s"}')
    assert 0.3 <= waited_s < 5
    assert app.metrics.value("gateway_body_timeouts_total") == 1
    # The one place of max_in_flight=1 is free again.
    assert after.status_code == 200


def test_request_log_line_says_where_its_limit_was_decided(
    gateway: GatewayFactory, redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)

    answers = [client.get("/api/v1/open")]
    redis.stop()
    answers += [client.get(path) for path in ("/api/v1/open", "/api/v1/closed")]
    answers.append(client.get("/api/v1/free"))

    assert [a.status_code for a in answers] == [200, 200, 503, 200]
    lines = {
        getattr(r, "request_id", None): r
        for r in caplog.records
        if r.name == REQUEST_LOGGER
    }
    decided = [
        getattr(lines[a.headers["x-request-id"]], "ratelimit", None) for a in answers
    ]
    assert decided == ["redis", "local", "closed", None]


def test_limits_key_body_fields_with_a_secret(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    client = gateway(routes=LIMITED_ROUTES, redis_url=redis.url)

    failed = login(client, "ann@example.org", "wrong")

    plain = hashlib.blake2b(
        b"ann@example.org", digest_size=16, person=b"campus-ratelimit"
    ).hexdigest()
    with redis_sync.Redis.from_url(redis.url) as store:
        keys = sorted(key.decode() for key in store.scan_iter("rl:fail-account:*"))
    assert failed.status_code == 401
    assert len(keys) == 1
    assert keys != [f"rl:fail-account:email:{plain}"]


def test_requests_over_the_in_flight_cap_get_a_fast_503(
    gateway: GatewayFactory, redis: RedisServer
) -> None:
    client = gateway(
        routes=LIMITED_ROUTES,
        redis_url=redis.url,
        max_in_flight=2,
        upstream_timeout_s=1.0,
    )
    app: Gateway = gateway.apps[0]  # type: ignore[attr-defined]
    hanging = [
        threading.Thread(target=client.get, args=("/api/v1/hang",)) for _ in range(2)
    ]
    for thread in hanging:
        thread.start()
    _wait_for(lambda: app._in_flight == 2, "two requests in flight")

    shed = client.get("/api/v1/free")
    health = client.get("/healthz")
    for thread in hanging:
        thread.join(10)

    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["detail"] == (
        "the gateway is handling its limit of 2 requests at once; retry in 1s"
    )
    assert health.status_code == 200
    assert app.metrics.value("gateway_requests_shed_total") == 1
    assert client.get("/api/v1/free").status_code == 200


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s}s for {what}")
        time.sleep(0.01)


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
