"""What the gateway costs per request, against a trivial upstream, side by side.

    .venv/bin/python load/benchmarks/gateway_proxy.py [--duration 5] [--connections 64]
    .venv/bin/python load/benchmarks/gateway_proxy.py --limits   # the rate limiter

Starts, each as its own process on loopback: a trivial upstream, the
gateway in front of it (uvicorn with uvloop and httptools, as the harness
runs it), and three bare proxies that price one choice each (an aiohttp
client, an httpx client, Starlette around the aiohttp client). Loads each
with wrk when it is installed, else with a small aiohttp load generator,
and prints requests per second, p50 and p99, with ratios against the
upstream served directly. With granian installed, the gateway is measured
under granian too. Everything runs on one machine: the load generator takes
CPU from the servers, so compare rows, not absolute numbers across machines.

With ``--limits`` it prices rate limiting instead: a redis-server of its own
and two gateways in front of the same upstream, one whose JWT route has no
limits and one whose JWT route has two policies (high enough never to
refuse, so every request is one decision in Redis), loaded in turn, twice.
The ratio is RPS against the first row (limits off). Decisions that fell
back to the process-local limiter (Redis slower than
GATEWAY_REDIS_TIMEOUT_MS) are counted from the gateway's log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "bench-users"
AUDIENCE = "bench-api"
START_TIMEOUT_S = 20.0
ROUTES = """
[versions.v1]
routes = [
    { path = "/open", methods = ["GET"], service = "users", role = "public" },
    { path = "/users/me", methods = ["GET"], service = "users", role = "user" },
]
"""


LIMITED_ROUTES = """
policies = [
    { name = "bench-burst", limit = 100000000, window_s = 1 },
    { name = "bench-sustained", limit = 100000000, window_s = 60 },
]
[[versions.v1.routes]]
path = "/users/me"
methods = ["GET"]
service = "users"
role = "user"
limits = ["bench-burst", "bench-sustained"]
"""
FALLBACK_LINE = "rate limits decided without Redis"


@dataclass(frozen=True)
class Case:
    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds, unmeasured")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", nargs="*", help="run only the cases with these names")
    parser.add_argument(
        "--stack-state",
        type=Path,
        help="instead: load the full chain of a running stack (python -m harness up "
        "--detach writes .harness/stack.json): gateway -> users GET /api/v1/users/me",
    )
    parser.add_argument(
        "--limits",
        action="store_true",
        help="instead: the JWT route with rate limiting off and on, side by side",
    )
    parser.add_argument(
        "--redis-timeout-ms",
        type=float,
        help="with --limits: GATEWAY_REDIS_TIMEOUT_MS of the limited gateway "
        "(default: the gateway's own default)",
    )
    args = parser.parse_args(argv)
    if args.stack_state:
        _report(_chain_cases(args.stack_state), args)
        return 0
    if args.limits:
        return _limits(args)

    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as folder,
        ExitStack() as stack,
    ):
        work = Path(folder)
        token = _write_keys(work)
        (work / "routes.toml").write_text(ROUTES)
        upstream = stack.enter_context(
            _server(work, "upstream", "load.benchmarks.bare_apps:upstream", {})
        )
        gateway_env = {
            "GATEWAY_ROUTES": str(work / "routes.toml"),
            "UPSTREAM_USERS": upstream,
            "JWKS_URL": f"{upstream}/.well-known/jwks.json",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "REDIS_URL": "redis://127.0.0.1:9/0",  # only /readyz uses it
        }
        proxy_env = {"BENCH_UPSTREAM": upstream}
        servers = {
            "gateway": ("services.gateway.main:app", gateway_env, "uvicorn"),
            "aiohttp": (
                "load.benchmarks.bare_apps:aiohttp_proxy",
                proxy_env,
                "uvicorn",
            ),
            "httpx": ("load.benchmarks.bare_apps:httpx_proxy", proxy_env, "uvicorn"),
            "starlette": (
                "load.benchmarks.bare_apps:starlette_proxy",
                proxy_env,
                "uvicorn",
            ),
        }
        if shutil.which("granian", path=str(Path(sys.executable).parent)):
            servers["granian"] = ("services.gateway.main:app", gateway_env, "granian")
        urls = {
            name: stack.enter_context(_server(work, name, app, env, runner))
            for name, (app, env, runner) in servers.items()
        }
        bearer = (("Authorization", f"Bearer {token}"),)
        cases = [
            Case("upstream direct", f"{upstream}/api/v1/open"),
            Case("bare proxy: aiohttp client", f"{urls['aiohttp']}/api/v1/open"),
            Case("bare proxy: httpx client", f"{urls['httpx']}/api/v1/open"),
            Case("bare proxy: starlette+aiohttp", f"{urls['starlette']}/api/v1/open"),
            Case("gateway, public route", f"{urls['gateway']}/api/v1/open"),
            Case("gateway, JWT route", f"{urls['gateway']}/api/v1/users/me", bearer),
        ]
        if "granian" in urls:
            cases += [
                Case("gateway on granian, public", f"{urls['granian']}/api/v1/open"),
                Case(
                    "gateway on granian, JWT",
                    f"{urls['granian']}/api/v1/users/me",
                    bearer,
                ),
            ]
        if args.only:
            cases = [case for case in cases if case.name in args.only]
        _report(cases, args)
    return 0


def _limits(args: argparse.Namespace) -> int:
    """The JWT route through two gateways, without and with rate limits."""
    from harness.backends.local.binaries import redis_server

    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as folder,
        ExitStack() as stack,
    ):
        work = Path(folder)
        token = _write_keys(work)
        (work / "off.toml").write_text(ROUTES)
        (work / "on.toml").write_text(LIMITED_ROUTES)
        port = _free_port()
        redis = subprocess.Popen(
            [str(redis_server()), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        stack.callback(redis.wait, 10)
        stack.callback(redis.terminate)
        _await_up(port, redis, work / "none.log")
        upstream = stack.enter_context(
            _server(work, "upstream", "load.benchmarks.bare_apps:upstream", {})
        )
        env = {
            "UPSTREAM_USERS": upstream,
            "JWKS_URL": f"{upstream}/.well-known/jwks.json",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        }
        if args.redis_timeout_ms:
            env["GATEWAY_REDIS_TIMEOUT_MS"] = str(args.redis_timeout_ms)
        urls = {
            name: stack.enter_context(
                _server(
                    work,
                    f"gateway-{name}",
                    "services.gateway.main:app",
                    {**env, "GATEWAY_ROUTES": str(work / f"{name}.toml")},
                )
            )
            for name in ("off", "on")
        }
        bearer = (("Authorization", f"Bearer {token}"),)
        cases = [
            Case(f"JWT route, limits {name}", f"{urls[name]}/api/v1/users/me", bearer)
            for _ in range(2)
            for name in ("off", "on")
        ]
        _report(cases, args)
        log = (work / "gateway-on.log").read_text(errors="replace")
        fallbacks = sum(
            int(found.group(1))
            for found in re.finditer(FALLBACK_LINE + r": (\d+) in the last", log)
        )
        openings = len(re.findall(r"-> open", log))
        if os.environ.get("BENCH_KEEP_LOG"):
            Path(os.environ["BENCH_KEEP_LOG"]).write_text(log)
        print(
            f"limited gateway: {fallbacks} decisions made without Redis; "
            f"the circuit breaker opened {openings} time(s)"
        )
    return 0


def _chain_cases(state_file: Path) -> list[Case]:
    """Users served directly (identity headers set by hand) and through the gateway."""
    from harness.state import StackState

    endpoints = StackState.load(state_file).endpoints
    gateway, users = endpoints["gateway"].url, endpoints["users"].url
    email = f"bench-{time.monotonic_ns()}@example.org"
    password = "bench password 42"  # noqa: S105 (a throwaway account)
    with httpx.Client(base_url=gateway, timeout=10) as client:
        client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": password, "full_name": "Bench"},
        ).raise_for_status()
        login = client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        login.raise_for_status()
        token = login.json()["access_token"]
        user_id = client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        ).json()["id"]
    identity = (("X-User-Id", user_id), ("X-User-Roles", "learner"))
    return [
        Case("users direct, JWKS", f"{users}/.well-known/jwks.json"),
        Case("gateway -> users, JWKS", f"{gateway}/.well-known/jwks.json"),
        Case("users direct, 1 replica", f"{users}/api/v1/users/me", identity),
        Case(
            "gateway -> users, JWT",
            f"{gateway}/api/v1/users/me",
            (("Authorization", f"Bearer {token}"),),
        ),
    ]


def _report(cases: list[Case], args: argparse.Namespace) -> None:
    """Print one row per case; ratios are RPS against the first and second rows."""
    tool = "wrk" if shutil.which("wrk") else "this script's aiohttp load generator"
    print(
        f"load: {tool}, {args.connections} connections, {args.duration:g}s per case "
        f"after {args.warmup:g}s warm-up; {os.cpu_count()} CPUs"
    )
    print(
        f"{'case':<32}{'RPS':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'vs 1st':>8}{'vs 2nd':>8}"
    )
    baselines: list[float] = []
    for case in cases:
        _load(case, args.warmup, args.connections)
        result = _load(case, args.duration, args.connections)
        if len(baselines) < 2:
            baselines.append(result.rps)
        ratios = "".join(f"{result.rps / rps:>8.2f}" for rps in baselines)
        print(
            f"{case.name:<32}{result.rps:>9.0f}{result.p50_ms:>9.2f}"
            f"{result.p99_ms:>9.2f}{result.errors:>8}{ratios}"
        )
    names = " and ".join(case.name for case in cases[:2])
    print(f"ratios: RPS against {names}, measured in this run")
    print(f"(on a shared machine every row competes with {tool} and the other servers)")


def _load(case: Case, duration_s: float, connections: int) -> Result:
    if shutil.which("wrk"):
        return _wrk(case, duration_s, connections)
    return asyncio.run(_generate(case, duration_s, connections))


def _wrk(case: Case, duration_s: float, connections: int) -> Result:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
    ]
    for name, value in case.headers:
        argv += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*argv, case.url], capture_output=True, text=True, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise RuntimeError(f"wrk printed no Requests/sec for {case.url}:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: .*", output)
    return Result(
        rps=float(rps.group(1)),
        p50_ms=_wrk_latency(output, "50"),
        p99_ms=_wrk_latency(output, "99"),
        errors=int(errors.group(1)) if errors else (1 if sockets else 0),
    )


def _wrk_latency(output: str, percentile: str) -> float:
    found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no {percentile}% latency:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


async def _generate(case: Case, duration_s: float, connections: int) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    connector = aiohttp.TCPConnector(limit=connections)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(case.url, headers=dict(case.headers)) as answer:
                await answer.read()
                errors += answer.status >= 400
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        rps=len(latencies) / elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        errors=errors,
    )


def _write_keys(work: Path) -> str:
    """Write the JWKS the upstream publishes; return a token it verifies."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    (work / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "bench"}]}))
    now = int(time.time())
    claims = {"sub": "bench-user", "roles": ["learner"], "iss": ISSUER,
              "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600}  # fmt: skip
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bench"})


@contextmanager
def _server(
    work: Path, name: str, app: str, env: dict[str, str], runner: str = "uvicorn"
) -> Iterator[str]:
    port = _free_port()
    bindir = Path(sys.executable).parent
    if runner == "granian":
        argv = [str(bindir / "granian"), "--interface", "asgi", "--loop", "uvloop",
                "--host", "127.0.0.1", "--port", str(port), "--no-ws", app]  # fmt: skip
    else:
        argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning"]  # fmt: skip
    log = (work / f"{name}.log").open("wb")
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "BENCH_JWKS": str(work / "jwks.json"),
            "PYTHONPATH": str(ROOT),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _await_up(port, process, work / f"{name}.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _await_up(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error = "no attempt yet"
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(
        f"port {port} took no connection within {START_TIMEOUT_S}s "
        f"(exit code {process.poll()}, last error {last_error}); log:\n{tail}"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


if __name__ == "__main__":
    sys.exit(main())
