"""What one rate-limit decision costs the gateway's process, by Redis client.

    .venv/bin/python load/benchmarks/redis_clients.py [--calls 20000] [--concurrency 64]

Starts a redis-server of its own on loopback and sends the limiter's
EVALSHA (two policies, one key each, a fresh key per call so every call
records) from ``--concurrency`` coroutines on one uvloop event loop, first
through redis-py's asyncio client (with hiredis, as installed), then
through the gateway's ``RedisWire``, then redis-py again and the wire again
(so drift shows). It prints, per client, decisions per second and the CPU
time of this process per decision: that is what a request pays in the
gateway. redis-server's own CPU is not counted. The ratio is against the
first redis-py run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import redis.asyncio as aioredis
import uvloop

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.backends.local.binaries import redis_server  # noqa: E402
from services.gateway.redis_wire import RedisAddress, RedisWire  # noqa: E402
from services.gateway.sliding_log import SCRIPT, SCRIPT_SHA  # noqa: E402

Call = Callable[[list[str]], Awaitable[object]]
POLICY_ARGS = (20, 1_000_000, 600, 60_000_000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as folder:
        port = _free_port()
        server = subprocess.Popen(
            [str(redis_server()), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _await_redis(port)
            print(
                f"{args.calls} EVALSHA decisions per run, {args.concurrency} "
                f"concurrent callers, uvloop; redis-server "
                f"{shutil.which('redis-server') or redis_server()}"
            )
            print(f"{'client':<24}{'decisions/s':>12}{'CPU µs/call':>13}{'vs 1st':>8}")
            uvloop.install()
            first: float | None = None
            for name in (
                "redis-py asyncio",
                "RedisWire",
                "redis-py asyncio",
                "RedisWire",
            ):
                rate, cpu_us = asyncio.run(
                    _run(name, port, args.calls, args.concurrency)
                )
                first = first or cpu_us
                print(f"{name:<24}{rate:>12.0f}{cpu_us:>13.1f}{first / cpu_us:>8.2f}")
            print(
                "ratio: CPU per call of the first row over this row's (higher: cheaper)"
            )
        finally:
            server.terminate()
            server.wait(10)
    return 0


async def _run(
    name: str, port: int, calls: int, concurrency: int
) -> tuple[float, float]:
    call, close = await _client(name, port)
    counter = itertools.count()
    run_id = time.monotonic_ns()

    async def worker(count: int) -> None:
        for _ in range(count):
            n = next(counter)
            await call([f"bench:{run_id}:{n}:a", f"bench:{run_id}:{n}:b"])

    await worker(200)  # warm-up: connections, script cache
    per_worker = calls // concurrency
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    done = per_worker * concurrency
    return done / wall, cpu / done * 1e6


async def _client(name: str, port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    if name.startswith("redis-py"):
        client = aioredis.Redis(host="127.0.0.1", port=port)
        await client.script_load(SCRIPT)

        async def py_call(keys: list[str]) -> object:
            return await client.evalsha(SCRIPT_SHA, len(keys), *keys, *POLICY_ARGS)

        return py_call, client.aclose

    wire = RedisWire(RedisAddress("127.0.0.1", port))
    await wire.call("SCRIPT", "LOAD", SCRIPT, timeout_s=1.0)

    async def wire_call(keys: list[str]) -> object:
        return await wire.call(
            "EVALSHA", SCRIPT_SHA, len(keys), *keys, *POLICY_ARGS, timeout_s=1.0
        )

    async def wire_close() -> None:
        wire.close()

    return wire_call, wire_close


def _await_redis(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"redis-server did not listen on port {port} within 10s")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


if __name__ == "__main__":
    sys.exit(main())
