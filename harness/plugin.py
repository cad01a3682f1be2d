"""The pytest plugin: one stack per test run, shared by every xdist worker.

Options: ``--stack {auto,local,external}``, ``--stack-state FILE``,
``--keep-stack``, ``--seed N``. Fixtures: ``stack`` (the endpoints),
``stack_state``, ``http`` (an httpx client for the gateway), ``mailbox`` (the
mail sink), and ``seed`` and ``run_tag`` for test data.

Without xdist the stack starts when a test first asks for it. Under xdist it
starts on the controller before the workers are spawned, the workers receive
its endpoints, and the controller tears it down after the last worker ends —
also on Ctrl-C, on failures and when a worker crashes.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from harness import reporting

if TYPE_CHECKING:
    import httpx

    from harness.endpoints import Endpoints
    from harness.mailbox import Mailbox
    from harness.stack import ComponentReady, Stack
    from harness.state import StackState

STACK_MODES = ("auto", "local", "external")
WORKER_STATE_KEY = "harness_stack"
WORKER_ERROR_KEY = "harness_stack_error"


# -- options -------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "stack under test (harness)")
    group.addoption(
        "--stack",
        default="auto",
        metavar="MODE",
        help="how to get the stack: auto (local for now), local (processes on "
        "loopback), external (endpoints from --stack-state). Default: auto.",
    )
    group.addoption(
        "--stack-state",
        metavar="FILE",
        help="with --stack external: the state file with the endpoints, as written "
        "by `python -m harness up` or by hand",
    )
    reporting.add_options(group)
    group.addoption(
        "--keep-stack",
        action="store_true",
        help="leave the stack running after the run; "
        "stop it with `python -m harness down`",
    )


# -- hooks ---------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    mode = config.getoption("stack")
    if mode not in STACK_MODES:
        raise pytest.UsageError(
            f"--stack={mode!r} is not a stack mode; use one of {', '.join(STACK_MODES)}"
        )
    state_file = config.getoption("stack_state")
    if state_file and mode != "external":
        raise pytest.UsageError(
            "--stack-state only applies with --stack external; "
            f"add --stack external or drop --stack-state {state_file}"
        )
    if config.getoption("keep_stack") and mode == "external":
        raise pytest.UsageError(
            "--keep-stack has no effect with --stack external; drop it"
        )
    config.pluginmanager.register(StackSession(config, mode), StackSession.name)
    config.pluginmanager.register(reporting.Reporting(config), reporting.Reporting.name)


class StackSession:
    """Owns (or, on xdist workers and with ``external``, only knows) the stack."""

    name = "harness-stack"

    def __init__(self, config: pytest.Config, mode: str) -> None:
        self.config = config
        self.mode = mode
        self.state: StackState | None = None
        self.error: str | None = None
        self.stack: Stack | None = None
        self.start_s: float | None = None
        # Released at teardown: the state file a kept stack will be saved in,
        # and the SIGTERM handler installed while the stack runs.
        self.on_teardown = contextlib.ExitStack()
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        if workerinput is not None:
            self._receive(workerinput)
        elif mode == "external":
            self.state = _load_external(config)
        elif config.getoption("keep_stack"):
            self._claim_state_file()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.is_worker or self.mode == "external":
            return
        if self.config.pluginmanager.has_plugin("dsession"):
            self._start()  # before xdist spawns the workers

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.state is not None:
            node.workerinput[WORKER_STATE_KEY] = self.state.to_json()
        if self.error is not None:
            node.workerinput[WORKER_ERROR_KEY] = self.error

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(
        self, session: pytest.Session
    ) -> Generator[None, object, object]:
        # Innermost wrapper: the stack stops as soon as the last test (or worker)
        # is done, before coverage combines what the stack's processes wrote.
        # An interrupted loop leaves session fixtures to tear down later, and
        # they may still need the stack: pytest_unconfigure stops it then.
        result = yield
        self.teardown()
        return result

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.teardown()  # when the run ended before its test loop

    def ensure_started(self) -> StackState:
        """The running stack's state; starts it on first use in the owning process."""
        if self.state is None and self.error is None and not self.is_worker:
            self._start()
        if self.state is None:
            pytest.fail(self.error or "the stack was not started", pytrace=False)
        return self.state

    def teardown(self) -> None:
        stack, self.stack = self.stack, None
        with self.on_teardown:
            if stack is None:
                return
            if self.config.getoption("keep_stack"):
                self._keep(stack)
            else:
                stack.stop()

    def _start(self) -> None:
        from harness.config import find_config
        from harness.errors import HarnessError
        from harness.stack import Stack

        try:
            config = find_config(self.config.rootpath)
            topology = config.topology()
        except HarnessError as exc:
            self.error = f"harness: {exc}"
            return
        self._write(f"harness: starting stack {topology.name!r} ({self.mode})")
        stack = Stack(topology, root=config.root, on_ready=self._report_ready)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # A terminated run should still tear the stack down.
            signal.signal(signal.SIGTERM, _interrupt)
            self.on_teardown.callback(signal.signal, signal.SIGTERM, signal.SIG_DFL)
        try:
            stack.start()
        except HarnessError as exc:
            self.error = f"harness: {exc}"
            self._write(self.error)
            return
        self.stack = stack
        self.start_s = stack.elapsed_s
        self.state = stack.state()
        self._write(f"harness: stack ready in {stack.elapsed_s:.2f}s")

    def _claim_state_file(self) -> None:
        """Refuse --keep-stack now if the state file it will write is taken."""
        from harness.config import find_config
        from harness.errors import HarnessError
        from harness.state import claim

        try:
            self.on_teardown.enter_context(
                claim(find_config(self.config.rootpath).state_file)
            )
        except HarnessError as exc:
            raise pytest.UsageError(f"--keep-stack: {exc}") from exc

    def _keep(self, stack: Stack) -> None:
        from harness.config import find_config

        path = find_config(self.config.rootpath).state_file
        stack.state().save(path)
        self._write(
            f"harness: stack kept running; endpoints in {path}; reuse it with "
            f"--stack external --stack-state {path}; "
            "stop it with `python -m harness down`"
        )

    def _receive(self, workerinput: dict[str, Any]) -> None:
        from harness.state import StackState

        if WORKER_STATE_KEY in workerinput:
            self.state = StackState.from_json(workerinput[WORKER_STATE_KEY])
        self.error = workerinput.get(WORKER_ERROR_KEY)

    def _report_ready(self, event: ComponentReady) -> None:
        replicas = f" x{event.replicas}" if event.replicas > 1 else ""
        self._write(
            f"harness:   {event.name + replicas:<16} ready in {event.elapsed_s:5.2f}s  "
            f"{event.address}"
        )

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _load_external(config: pytest.Config) -> StackState:
    from harness.config import find_config
    from harness.errors import HarnessError
    from harness.state import StackState

    given = config.getoption("stack_state")
    try:
        path = Path(given) if given else find_config(config.rootpath).state_file
        return StackState.load(path)
    except HarnessError as exc:
        raise pytest.UsageError(
            f"--stack external: {exc}; pass --stack-state FILE"
        ) from exc


# -- fixtures ------------------------------------------------------------------


def _session(request: pytest.FixtureRequest) -> StackSession:
    plugin = request.config.pluginmanager.get_plugin(StackSession.name)
    assert isinstance(plugin, StackSession)  # registered in pytest_configure
    return plugin


@pytest.fixture(scope="session")
def stack_state(request: pytest.FixtureRequest) -> StackState:
    """The running stack: endpoints, working folder, processes."""
    return _session(request).ensure_started()


@pytest.fixture(scope="session")
def stack(stack_state: StackState) -> Endpoints:
    """Every component's endpoint by name, e.g. ``stack["postgres"].dsn``."""
    return stack_state.endpoints


@pytest.fixture
def http_client(
    request: pytest.FixtureRequest, stack: Endpoints
) -> Iterator[Callable[[], httpx.Client]]:
    """Makes httpx clients for the gateway whose exchanges are recorded: a failing
    test shows them, and the service log lines of their request ids."""
    from harness.config import find_config
    from harness.errors import HarnessError
    from harness.exchanges import Recorder

    try:
        gateway = find_config(request.config.rootpath).gateway
    except HarnessError:
        gateway = "gateway"
    if gateway not in stack:
        pytest.fail(
            f"the stack has no component {gateway!r} for the http fixture (it has: "
            f"{', '.join(stack)}); name the gateway with [tool.harness] gateway = ...",
            pytrace=False,
        )
    recorder = request.node.stash.setdefault(
        reporting.RECORDER, Recorder(request.node.nodeid)
    )
    clients: list[httpx.Client] = []

    def make() -> httpx.Client:
        clients.append(recorder.client(stack[gateway].url, timeout=10.0))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def http(http_client: Callable[[], httpx.Client]) -> httpx.Client:
    """An httpx client whose base URL is the gateway's (see ``http_client``)."""
    return http_client()


@pytest.fixture(scope="session")
def seed(request: pytest.FixtureRequest) -> int:
    """The run's seed for test data; ``--seed N`` repeats a run's data."""
    plugin = request.config.pluginmanager.get_plugin(reporting.Reporting.name)
    assert isinstance(plugin, reporting.Reporting)
    return plugin.seed


@pytest.fixture(scope="session")
def run_tag(request: pytest.FixtureRequest) -> str:
    """This run's own tag for test data on an external stack, else ``""``.

    Such a stack outlives runs and keeps their people; data factories put the
    tag in emails and titles so that a run, repeated with its seed, makes
    people of its own again. It is new each run and printed in the header.
    """
    plugin = request.config.pluginmanager.get_plugin(reporting.Reporting.name)
    assert isinstance(plugin, reporting.Reporting)
    return plugin.run_tag


@pytest.fixture(scope="session")
def mailbox(stack: Endpoints) -> Iterator[Mailbox]:
    """A client of the stack's mail sink."""
    from harness.mailbox import Mailbox

    sinks = stack.of_kind("mailsink")
    if not sinks:
        pytest.fail(
            f"the stack has no mailsink component (it has: {', '.join(stack)})",
            pytrace=False,
        )
    with Mailbox(sinks[0].url) as client:
        yield client
