"""A failing scenario explains itself: allure attachments and the rerun command.

Runs the deliberately failing scenario (``scenarios/test_demo_failure.py``)
in a pytest of its own, against this run's stack, and reads what it left.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from fixtures.factories import DataFactory
from harness.state import StackState

ROOT = Path(__file__).resolve().parents[2]
DEMO = "scenarios/test_demo_failure.py"
FAILING = f"{DEMO}::test_demo_failure_certificate_before_the_lessons"


def run_scenarios(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def attachment(results: Path, result: dict, name: str) -> str:
    [found] = [a for a in result.get("attachments", []) if a["name"] == name]
    return (results / found["source"]).read_text()


def test_demo_failure_is_left_out_unless_asked_for(
    stack_state: StackState, tmp_path: Path
) -> None:
    state = tmp_path / "stack.json"
    stack_state.save(state)

    ran = run_scenarios(DEMO, "--stack", "external", "--stack-state", str(state))

    assert ran.returncode == 5, ran.stdout  # nothing collected: all deselected
    assert "1 deselected" in ran.stdout


def test_failing_scenario_attaches_exchanges_and_logs_and_prints_the_rerun(
    stack_state: StackState, tmp_path: Path
) -> None:
    state, results = tmp_path / "stack.json", tmp_path / "allure"
    stack_state.save(state)
    stack_options = ["--stack", "external", "--stack-state", str(state)]

    ran = run_scenarios(
        DEMO, "-m", "demo_failure", "--seed", "4242", *stack_options,
        f"--alluredir={results}",
    )  # fmt: skip

    assert ran.returncode == 1, ran.stdout + ran.stderr
    rerun = re.search(r"^harness: rerun the failures: (.+)$", ran.stdout, re.M)
    assert rerun, ran.stdout
    assert shlex.split(rerun.group(1)) == [
        "python", "-m", "pytest", FAILING, "--seed", "4242", *stack_options,
    ]  # fmt: skip
    [result] = [json.loads(path.read_text()) for path in results.glob("*-result.json")]
    assert result["status"] == "failed"
    environment = (results / "environment.properties").read_text().splitlines()
    assert {"seed=4242", "stack=campus"} <= set(environment), environment
    run_tag = re.search(r"^harness: seed 4242 .*; run tag (r\w+) ", ran.stdout, re.M)
    assert run_tag, ran.stdout
    assert f"run.tag={run_tag.group(1)}" in environment
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert ("feature", "Failure reports") in labels
    steps = [(step["name"], step["status"]) for step in result["steps"]]
    assert steps[-1][0].startswith("Complete enrollment "), steps
    assert steps[-1][1] == "failed"
    exchanges = attachment(results, result, "HTTP exchanges")
    complete = re.search(
        r"> POST \S+/api/v1/enrollments/\S+/complete\n(?:> .*\n)*< 409", exchanges
    )
    assert complete, exchanges
    # The learner logged in: their password and tokens went by, and show redacted.
    assert '"password": "***"' in exchanges
    assert '"refresh_token": "***"' in exchanges
    assert "> authorization: ***" in exchanges
    assert "eyJ" not in exchanges  # no JWT: not in a header, not in a body
    password = DataFactory.for_test(4242, FAILING).person().password
    for where in (exchanges, ran.stdout, json.dumps(result)):
        assert password not in where
    request_id = re.findall(r"> x-request-id: (\S+)", exchanges)[-1]
    logs = attachment(results, result, "service log lines")
    complete_lines = [line for line in logs.splitlines() if request_id in line]
    assert any(line.startswith("learning") for line in complete_lines), logs
    assert any(line.startswith("gateway") for line in complete_lines), logs

    again = run_scenarios(*shlex.split(rerun.group(1))[3:])

    assert again.returncode == 1, again.stdout
    assert "harness: seed 4242 (repeat with --seed 4242)" in again.stdout
    # The stack keeps the first run's learner: the rerun makes one of its own.
    assert f"run tag {run_tag.group(1)} " not in again.stdout
    assert "collected 1 item\n" in again.stdout
    assert f"\nFAILED {FAILING}" in again.stdout
    assert "expected HTTP 200, got 409 from POST /api/v1/enrollments/" in again.stdout
    assert "1 failed in " in again.stdout
    assert f"harness: rerun the failures: {rerun.group(1)}\n" in again.stdout
