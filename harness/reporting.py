"""What a run tells its reader: the seed, a rerun command, timings, and for each
failed test its HTTP exchanges and the service log lines they caused.

Failure details go into the test's report sections (shown by pytest), into
the test's ``<system-out>`` in JUnit XML (``--junitxml``: CI pages show it
beside the failure, whose message and traceback stay short), and, when
allure-pytest is installed, into allure attachments.

On a stack that outlives the run (``--stack external``) the run also gets a
tag of its own, new each time, that test data carries besides the seed's
choices (see ``fixtures.factories``): such a stack still holds earlier runs'
people.
"""

from __future__ import annotations

import platform
import random
import secrets
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.exchanges import Recorder

SEED_KEY = "harness_seed"
RUN_TAG_KEY = "harness_run_tag"
# The report sections of a failed test; JUnit XML keeps them as its output.
EXCHANGES_SECTION = "HTTP exchanges"
LOG_LINES_SECTION = "service log lines of these requests"
RECORDER = pytest.StashKey["Recorder"]()
OPTIONS_TO_REPEAT = ("stack", "stack_state")
SPENT_KEY = "harness_spent"
# Seconds spent in named parts of this process's run (``timed``).
_spent: dict[str, float] = {}


@contextmanager
def timed(part: str) -> Iterator[None]:
    """Count the time of the block towards ``part`` in the run's closing line.

    Fixtures that create test data wrap it in ``timed("seeding")``; under
    xdist, every worker's time is summed.
    """
    started = time.monotonic()
    try:
        yield
    finally:
        _spent[part] = _spent.get(part, 0.0) + time.monotonic() - started


def add_options(group: Any) -> None:
    group.addoption(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the test data (factories, faker); printed by every run, "
        "so a failing run can be repeated with the same data",
    )


class Reporting:
    """Registered by the plugin next to the stack session."""

    name = "harness-reporting"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        given = config.getoption("seed")
        if workerinput is not None and SEED_KEY in workerinput:
            self.seed = int(workerinput[SEED_KEY])
            self.run_tag: str = workerinput.get(RUN_TAG_KEY, "")
        else:
            self.seed = given if given is not None else random.randrange(2**31)  # noqa: S311 - test data, not secrets
            external = config.getoption("stack", None) == "external"
            self.run_tag = "r" + secrets.token_hex(3) if external else ""
        self.loop_started: float | None = None
        self.loop_s = 0.0
        self.spent: dict[str, float] = {}

    def pytest_report_header(self) -> str:
        line = f"harness: seed {self.seed} (repeat with --seed {self.seed})"
        if self.run_tag:
            line += (
                f"; run tag {self.run_tag} in emails and titles, new each run, "
                "as the external stack keeps earlier runs' people"
            )
        return line

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SEED_KEY] = self.seed
        node.workerinput[RUN_TAG_KEY] = self.run_tag

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", None) or {}
        for part, seconds in output.get(SPENT_KEY, {}).items():
            self.spent[part] = self.spent.get(part, 0.0) + seconds

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[SPENT_KEY] = dict(_spent)
        else:
            for part, seconds in _spent.items():
                self.spent[part] = self.spent.get(part, 0.0) + seconds
            self._describe_environment()

    def _describe_environment(self) -> None:
        """What allure's overview shows under Environment: how to repeat the run."""
        folder = self.config.getoption("allure_report_dir", None)
        if not folder:
            return
        state = _session_state(self.config)
        facts = {
            "seed": str(self.seed),
            "stack": str(getattr(state, "name", "none")),
            "stack.backend": str(getattr(state, "backend", "none")),
            "python": platform.python_version(),
        }
        if self.run_tag:
            facts["run.tag"] = self.run_tag
        stack_s = _stack_start_s(self.config)
        if stack_s is not None:
            facts["stack.start-up"] = f"{stack_s:.1f}s"
        lines = [f"{key}={value}" for key, value in facts.items()]
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "environment.properties").write_text("\n".join(lines) + "\n")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(
        self, session: pytest.Session
    ) -> Generator[None, object, object]:
        self.loop_started = time.monotonic()
        try:
            return (yield)
        finally:
            self.loop_s = time.monotonic() - self.loop_started

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        recorder = item.stash.get(RECORDER, None)
        if report.failed and recorder is not None and recorder.exchanges:
            self._attach(item, report, recorder)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ours = (EXCHANGES_SECTION, LOG_LINES_SECTION)
        sections = [(name, text) for name, text in report.sections if name in ours]
        if sections:
            _add_junit_output(self.config, report, sections)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if getattr(self.config, "workerinput", None) is not None:
            return
        stack_s = _stack_start_s(self.config)
        parts = [f"stack start-up {stack_s:.1f}s"] if stack_s is not None else []
        workers = (
            "summed over workers, "
            if self.config.pluginmanager.has_plugin("dsession")
            else ""
        )
        parts += [
            f"{part} {seconds:.1f}s ({workers}part of the tests' time)"
            for part, seconds in sorted(self.spent.items())
        ]
        parts.append(f"tests {self.loop_s:.1f}s")
        terminalreporter.write_line("harness: " + ", ".join(parts))
        failed = [
            report.nodeid
            for kind in ("failed", "error")
            for report in terminalreporter.stats.get(kind, [])
            if getattr(report, "nodeid", "")
        ]
        if failed:
            terminalreporter.write_line(
                f"harness: rerun the failures: {self.rerun(failed)}"
            )

    def rerun(self, nodeids: list[str]) -> str:
        """A command that runs ``nodeids`` again with the same data and stack."""
        args = [
            "python",
            "-m",
            "pytest",
            *dict.fromkeys(nodeids),
            "--seed",
            str(self.seed),
        ]
        for option in OPTIONS_TO_REPEAT:
            value = self.config.getoption(option)
            if value not in (None, "auto"):
                args += [f"--{option.replace('_', '-')}", str(value)]
        return shlex.join(args)

    def _attach(
        self, item: pytest.Item, report: pytest.TestReport, recorder: Recorder
    ) -> None:
        from harness.exchanges import log_lines

        exchanges = recorder.render()
        report.sections.append((EXCHANGES_SECTION, exchanges))
        lines = "\n".join(log_lines(_logs_dir(self.config), recorder.request_ids))
        if lines:
            report.sections.append((LOG_LINES_SECTION, lines))
        try:
            import allure
        except ImportError:
            return
        allure.attach(exchanges, "HTTP exchanges", allure.attachment_type.TEXT)
        if lines:
            allure.attach(lines, "service log lines", allure.attachment_type.TEXT)


def _add_junit_output(
    config: pytest.Config, report: pytest.TestReport, sections: list[tuple[str, str]]
) -> None:
    """Give ``report``'s testcase in the JUnit XML a ``<system-out>`` of
    ``sections``, headed as pytest heads captured output there.

    pytest offers no public way to add a testcase's output; this is what its
    junitxml plugin does for captured output, after it recorded the failure
    (``trylast``), so the testcase keeps the order JUnit's schema wants.
    """
    try:
        from _pytest.junitxml import bin_xml_escape, xml_key
    except ImportError:  # a pytest that moved them: the report sections remain
        return
    xml = config.stash.get(xml_key, None)
    if xml is None:  # no --junitxml, or an xdist worker (the controller writes)
        return
    output = ET.Element("system-out")
    output.text = bin_xml_escape(
        "".join(f"{f' {name} '.center(80, '-')}\n{text}\n" for name, text in sections)
    )
    xml.node_reporter(report).append(output)


def _session_state(config: pytest.Config) -> Any:
    plugin = config.pluginmanager.get_plugin("harness-stack")
    return getattr(plugin, "state", None)


def _logs_dir(config: pytest.Config) -> Path:
    state = _session_state(config)
    workdir = getattr(state, "workdir", None)
    return Path(workdir) / "logs" if workdir else Path("/nonexistent")


def _stack_start_s(config: pytest.Config) -> float | None:
    plugin = config.pluginmanager.get_plugin("harness-stack")
    value = getattr(plugin, "start_s", None)
    return float(value) if value is not None else None
