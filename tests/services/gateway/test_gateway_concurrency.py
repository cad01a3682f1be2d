"""Several gateway processes share one Redis: together they admit the limit, no more.

Three gateways run as their own uvicorn processes, in front of one echo
upstream, with the harness's Redis (the ``stack`` fixture). One user's
token is sent to all of them at once until far more than the limit was
asked for. The sliding log decides each request in one atomic script, so
exactly the limit is admitted: a race between reading the log and writing
to it would admit a few more, and only an exact count shows that.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import pytest
import redis as redis_sync
from gateway_testkit import AUDIENCE, ISSUER, EchoApp, SigningKey, free_port, serving
from test_gateway_app import wait_for_health

from harness.endpoints import Endpoints

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 300
REQUESTS = 1200
GATEWAYS = 3
# Requests in flight at once: each of them may be the one that crosses the
# limit, so many of them contend for the last places.
CLIENTS = 96
ROUTES = f"""
policies = [{{ name = "hammer", limit = {LIMIT}, window_s = 120 }}]

[[versions.v1.routes]]
path = "/users/me"
methods = ["GET"]
service = "users"
role = "user"
limits = ["hammer"]
"""
FALLBACK = "rate limits decided without Redis"


@pytest.fixture
def gateway_processes(
    stack: Endpoints, tmp_path: Path, signing_key: SigningKey
) -> Iterator[list[str]]:
    """Base URLs of GATEWAYS gateway processes sharing the stack's Redis."""
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES)
    with ExitStack() as started:
        upstream = started.enter_context(
            serving(EchoApp("users", jwks={"keys": [signing_key.jwk()]}))
        )
        env = {
            **os.environ,
            "GATEWAY_ROUTES": str(routes),
            "UPSTREAM_USERS": upstream,
            "JWKS_URL": f"{upstream}/.well-known/jwks.json",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "REDIS_URL": stack["redis"].url,
            # This test is about atomicity: every decision must be Redis's.
            "GATEWAY_REDIS_TIMEOUT_MS": "2000",
            "LOG_LEVEL": "WARNING",
        }
        urls = []
        for index in range(GATEWAYS):
            port = free_port()
            log = (tmp_path / f"gateway-{index}.log").open("wb")
            started.callback(log.close)
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "services.gateway.main:app",
                 "--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers",
                 "--http", "services.gateway.server:GatewayHttpProtocol"],
                cwd=ROOT, env=env, stderr=log, stdout=log,
            )  # fmt: skip
            started.callback(process.wait, 10)
            started.callback(process.terminate)
            urls.append(f"http://127.0.0.1:{port}")
            wait_for_health(f"{urls[-1]}/healthz", process)
        yield urls


async def hammer(urls: list[str], token: str) -> Counter[int]:
    """Send REQUESTS requests, CLIENTS at a time, to the gateways in turn."""
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    turns = iter(range(REQUESTS))

    async def worker(session: aiohttp.ClientSession) -> None:
        for turn in turns:
            url = f"{urls[turn % len(urls)]}/api/v1/users/me"
            async with session.get(url, headers=headers) as answer:
                await answer.read()
                statuses[answer.status] += 1

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CLIENTS)))
    return statuses


def test_gateways_sharing_redis_admit_exactly_the_limit(
    gateway_processes: list[str],
    stack: Endpoints,
    signing_key: SigningKey,
    tmp_path: Path,
) -> None:
    subject = f"hammer-{uuid.uuid4().hex}"
    token = signing_key.sign(sub=subject)

    statuses = asyncio.run(hammer(gateway_processes, token))

    logs = "".join(path.read_text() for path in tmp_path.glob("gateway-*.log"))
    assert FALLBACK not in logs, "some decisions were not made by Redis:\n" + logs
    assert set(statuses) <= {200, 429}, statuses
    assert sum(statuses.values()) == REQUESTS
    assert statuses[200] == LIMIT, statuses
    with redis_sync.Redis.from_url(stack["redis"].url) as client:
        key = f"rl:hammer:user:{subject}"
        assert client.llen(key) == statuses[200]
        client.delete(key)
