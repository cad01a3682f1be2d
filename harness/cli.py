"""``python -m harness``: bring the stack up, inspect it, read its logs, stop it."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from harness.config import HarnessConfig, find_config
from harness.errors import HarnessError, StateError
from harness.stack import ComponentReady, Stack, address_of
from harness.state import StackState, claim

logger = logging.getLogger(__name__)

EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = find_config()
        state_file = (
            Path(args.state_file).resolve() if args.state_file else config.state_file
        )
        code: int = args.run(args, config, state_file)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Run the stack described by [tool.harness].",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--state-file",
        metavar="FILE",
        help="the stack's state file (default: [tool.harness] state_file, "
        "else .harness/stack.json)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the stack and print its endpoints")
    up.add_argument(
        "--detach", action="store_true", help="return once ready; stop it with `down`"
    )
    up.add_argument(
        "--only",
        nargs="+",
        metavar="COMPONENT",
        help="start only these components and what they depend on",
    )
    up.set_defaults(run=_up)

    status = commands.add_parser("status", help="show the running stack")
    status.add_argument("--json", action="store_true", help="print the state file")
    status.set_defaults(run=_status)

    logs = commands.add_parser("logs", help="print a component's log")
    logs.add_argument("component", metavar="COMPONENT")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing")
    logs.add_argument("-n", "--lines", type=int, default=0, metavar="N",
                      help="only the last N lines of each log")  # fmt: skip
    logs.set_defaults(run=_logs)

    down = commands.add_parser("down", help="stop the stack and remove its files")
    down.set_defaults(run=_down)
    return parser


def _up(args: argparse.Namespace, config: HarnessConfig, state_file: Path) -> int:
    with claim(state_file):
        return _run_stack(args, config, state_file)


def _run_stack(
    args: argparse.Namespace, config: HarnessConfig, state_file: Path
) -> int:
    topology = config.topology()
    if args.only:
        topology = topology.only(args.only)
    print(f"starting {topology.name!r} from {config.topology_path}", flush=True)
    stack = Stack(topology, root=config.root, on_ready=_print_ready)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    stack.start()
    try:
        stack.state().save(state_file)
        print(f"ready in {stack.elapsed_s:.2f}s; endpoints in {state_file}", flush=True)
        if args.detach:
            print("stop it with: python -m harness down", flush=True)
            return 0
        print("press Ctrl-C to stop", flush=True)
        while not stopping.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if not args.detach:
            print("stopping...", flush=True)
            stack.stop()
            state_file.unlink(missing_ok=True)
    return 0


def _print_ready(event: ComponentReady) -> None:
    replicas = f" x{event.replicas}" if event.replicas > 1 else ""
    name = f"{event.name}{replicas}"
    print(f"  {name:<16} ready in {event.elapsed_s:5.2f}s  {event.address}", flush=True)


def _status(args: argparse.Namespace, config: HarnessConfig, state_file: Path) -> int:
    try:
        state = StackState.load(state_file)
    except StateError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(state.to_json(), indent=2))
        return 0
    processes = state.processes
    print(f"stack {state.name!r} ({state.backend}), started {state.created_at}")
    dead = 0
    for name, endpoint in state.endpoints.items():
        own = [p for p in processes if p.component == name]
        alive = sum(p.alive() for p in own)
        dead += len(own) - alive
        health = f"{alive}/{len(own)} running" if own else "external"
        print(f"  {name:<16} {health:<12} {address_of(endpoint)}")
    return EXIT_ERROR if dead else 0


def _logs(args: argparse.Namespace, config: HarnessConfig, state_file: Path) -> int:
    state = StackState.load(state_file)
    if args.component not in state.endpoints:
        known = ", ".join(state.endpoints)
        raise HarnessError(
            f"no component {args.component!r} in the stack (it has: {known})"
        )
    if state.workdir is None:
        raise HarnessError(f"the stack in {state_file} keeps no logs here")
    pattern = re.compile(rf"{re.escape(args.component)}(-\d+)?\.log")
    paths = sorted(
        p for p in (state.workdir / "logs").glob("*.log") if pattern.fullmatch(p.name)
    )
    prefix = len(paths) > 1
    offsets = {path: _print_log(path, args.lines, prefix) for path in paths}
    while args.follow:
        time.sleep(0.2)
        for path in paths:
            offsets[path] = _print_from(path, offsets[path], prefix)
    return 0


def _print_log(path: Path, lines: int, prefix: bool) -> int:
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    text = complete.decode("utf-8", errors="replace").splitlines()
    for line in text[-lines:] if lines > 0 else text:
        print(f"{path.stem} | {line}" if prefix else line, flush=True)
    return len(complete)


def _print_from(path: Path, offset: int, prefix: bool) -> int:
    with open(path, "rb") as log:
        log.seek(offset)
        data = log.read()
    complete = data[: data.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        print(f"{path.stem} | {line}" if prefix else line, flush=True)
    return offset + len(complete)


def _down(args: argparse.Namespace, config: HarnessConfig, state_file: Path) -> int:
    if not state_file.exists():
        print(f"no stack state at {state_file}; nothing to stop")
        return 0
    state = StackState.load(state_file)
    state.remove(state_file)
    print(f"stopped {state.name!r} and removed {state.workdir}")
    return 0
