"""The gateway in front of real upstreams on loopback: forwarding, replicas, errors."""

from __future__ import annotations

import logging
from contextlib import ExitStack

import pytest
from gateway_testkit import (
    EchoApp,
    GatewayFactory,
    SigningKey,
    closed_port_url,
    hanging_up,
    header_values,
    serving,
)

from services.common.logs import REQUEST_LOGGER


def test_proxy_forwards_method_path_query_and_body(gateway: GatewayFactory) -> None:
    client = gateway()

    answer = client.post(
        "/api/v1/open?q=a%20b&x=1", content=b'{"a": 1}', headers={"X-Extra": "yes"}
    )

    assert answer.status_code == 200
    seen = answer.json()
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/api/v1/open"
    assert seen["query"] == "q=a%20b&x=1"
    assert seen["body"] == '{"a": 1}'
    assert header_values(seen, "x-extra") == ["yes"]
    assert answer.headers["x-upstream"] == "users"


def test_proxy_strips_client_identity_headers_on_public_route(
    gateway: GatewayFactory,
) -> None:
    client = gateway()

    answer = client.get(
        "/api/v1/open",
        headers={
            "X-User-Id": "admin-id",
            "X-User-Roles": "admin",
            "X-Campus-Foo": "bar",
            "x-campus-internal": "1",
        },
    )

    names = {name for name, _ in answer.json()["headers"]}
    assert answer.status_code == 200
    assert not names & {"x-user-id", "x-user-roles"}
    assert not [name for name in names if name.startswith("x-campus-")]


def test_proxy_injects_identity_from_token_over_client_headers(
    gateway: GatewayFactory, signing_key: SigningKey
) -> None:
    client = gateway()
    token = signing_key.sign(sub="user-42", roles=["learner", "admin"])

    answer = client.get(
        "/api/v1/users/me",
        headers={
            "Authorization": f"Bearer {token}",
            "X-User-Id": "someone-else",
            "X-User-Roles": "admin",
            "X-Campus-Foo": "bar",
        },
    )

    seen = answer.json()
    assert answer.status_code == 200
    assert header_values(seen, "x-user-id") == ["user-42"]
    assert header_values(seen, "x-user-roles") == ["learner,admin"]
    assert header_values(seen, "x-campus-foo") == []


def test_proxy_keeps_sane_request_id(gateway: GatewayFactory) -> None:
    client = gateway()

    answer = client.get("/api/v1/open", headers={"X-Request-ID": "scenario-7.step_2"})

    assert answer.headers["x-request-id"] == "scenario-7.step_2"
    assert header_values(answer.json(), "x-request-id") == ["scenario-7.step_2"]


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "semi;colon", ""])
def test_proxy_replaces_insane_request_id(gateway: GatewayFactory, sent: str) -> None:
    client = gateway()

    answer = client.get("/api/v1/open", headers={"X-Request-ID": sent})

    returned = answer.headers["x-request-id"]
    assert returned != sent
    assert len(returned) == 32
    assert header_values(answer.json(), "x-request-id") == [returned]


def test_proxy_answers_unknown_path_with_problem_and_request_id(
    gateway: GatewayFactory,
) -> None:
    client = gateway()

    answer = client.get("/api/v1/nowhere", headers={"X-Request-ID": "req-404"})

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-request-id"] == "req-404"
    assert answer.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no route matches path '/api/v1/nowhere'",
    }


def test_proxy_answers_wrong_method_with_405_and_allow(gateway: GatewayFactory) -> None:
    client = gateway()

    answer = client.delete("/api/v1/open")

    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.json()["detail"] == (
        "DELETE is not allowed on '/api/v1/open'; allowed: GET, POST"
    )


def test_proxy_rejects_dot_segments_in_params(gateway: GatewayFactory) -> None:
    client = gateway()

    answer = client.get("/api/v1/users/%2e%2e/competencies")

    assert answer.status_code == 404


def test_proxy_routes_specific_pattern_to_its_own_service(
    gateway: GatewayFactory, servers: ExitStack, signing_key: SigningKey
) -> None:
    competency = servers.enter_context(serving(EchoApp("competency")))
    client = gateway(
        upstreams={"users": (closed_port_url(),), "competency": (competency,)}
    )
    token = signing_key.sign()

    answer = client.get(
        "/api/v1/users/u1/competencies", headers={"Authorization": f"Bearer {token}"}
    )

    assert answer.status_code == 200
    assert answer.json()["server"] == "competency"


def test_proxy_round_robins_across_replicas(
    gateway: GatewayFactory, servers: ExitStack
) -> None:
    first = servers.enter_context(serving(EchoApp("first")))
    second = servers.enter_context(serving(EchoApp("second")))
    client = gateway(upstreams={"users": (first, second), "competency": (first,)})

    served = [client.get("/api/v1/open").json()["server"] for _ in range(4)]

    assert served == ["first", "second", "first", "second"]


def test_proxy_skips_replica_that_refuses_connections(
    gateway: GatewayFactory, servers: ExitStack
) -> None:
    alive = servers.enter_context(serving(EchoApp("alive")))
    client = gateway(
        upstreams={"users": (closed_port_url(), alive), "competency": (alive,)}
    )

    answers = [client.post("/api/v1/open", content=b"x") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert {a.json()["server"] for a in answers} == {"alive"}


def test_proxy_answers_503_without_healthy_replica(gateway: GatewayFactory) -> None:
    down = closed_port_url()
    client = gateway(
        upstreams={"users": (down, closed_port_url()), "competency": (down,)}
    )

    answer = client.get("/api/v1/open", headers={"X-Request-ID": "req-503"})

    assert answer.status_code == 503
    assert answer.headers["x-request-id"] == "req-503"
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["detail"] == (
        "no healthy replica of service 'users'; 2 replica(s) refused connections"
    )


def test_proxy_answers_504_when_upstream_is_too_slow(gateway: GatewayFactory) -> None:
    client = gateway(upstream_timeout_s=0.3)

    answer = client.get("/api/v1/hang")

    assert answer.status_code == 504
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "service 'users' did not answer within 0.3s"


def test_proxy_answers_502_when_upstream_hangs_up(
    gateway: GatewayFactory, servers: ExitStack
) -> None:
    rude = servers.enter_context(hanging_up())
    client = gateway(upstreams={"users": (rude,), "competency": (rude,)})

    answer = client.get("/api/v1/open", headers={"X-Request-ID": "req-502"})

    assert answer.status_code == 502
    assert answer.headers["x-request-id"] == "req-502"
    assert answer.json()["detail"] == (
        "service 'users' failed to answer: ServerDisconnectedError"
    )


def test_proxy_forwards_chunked_body(gateway: GatewayFactory) -> None:
    client = gateway()

    answer = client.post("/api/v1/open", content=iter([b"a" * 5, b"b" * 5]))

    seen = answer.json()
    assert seen["body"] == "aaaaabbbbb"
    assert header_values(seen, "content-length") == ["10"]
    assert header_values(seen, "transfer-encoding") == []


def test_proxy_answers_413_for_a_body_over_the_limit(gateway: GatewayFactory) -> None:
    client = gateway(max_body_bytes=8)

    answer = client.post("/api/v1/open", content=b"123456789")

    assert answer.status_code == 413
    assert answer.json()["detail"] == "the request body is larger than 8 bytes"


def test_proxy_never_replays_one_clients_cookies_to_another(
    gateway: GatewayFactory,
) -> None:
    client = gateway()

    first = client.get("/api/v1/open")
    client.cookies.clear()
    second = client.get("/api/v1/open")

    assert first.headers["set-cookie"] == "session=from-users"
    assert header_values(second.json(), "cookie") == []


def test_proxy_logs_one_line_per_request_without_token(
    gateway: GatewayFactory, signing_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    client = gateway()
    token = signing_key.sign(sub="user-9")
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)

    client.get(
        "/api/v1/users/me",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-log"},
    )

    lines = [r for r in caplog.records if getattr(r, "request_id", None) == "req-log"]
    assert len(lines) == 1
    line = vars(lines[0])
    assert line["route"] == "/api/v1/users/me"
    assert line["status"] == 200
    assert line["upstream_service"] == "users"
    assert line["user_id"] == "user-9"
    assert line["upstream"].startswith("http://127.0.0.1:")
    assert token not in caplog.text
    assert all(token not in str(value) for value in line.values())


def test_healthz_answers_200(gateway: GatewayFactory) -> None:
    client = gateway()

    answer = client.get("/healthz")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert "x-request-id" in answer.headers


def test_readyz_lists_redis_and_services_that_are_down(
    gateway: GatewayFactory, users: tuple[EchoApp, str]
) -> None:
    users[0].healthy = False
    client = gateway(
        upstreams={"users": (users[1],), "competency": (closed_port_url(),)}
    )

    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["down"] == ["competency", "redis", "users"]
    assert body["detail"].startswith("not ready: redis: PING failed: ConnectionError;")


def test_readyz_answers_200_with_redis_and_replicas_up(
    gateway: GatewayFactory, stack: object
) -> None:
    redis_url = stack["redis"].url  # type: ignore[index]

    answer = gateway(redis_url=redis_url).get("/readyz")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ready"}
