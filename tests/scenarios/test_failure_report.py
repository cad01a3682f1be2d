"""A failing scenario explains itself: allure attachments and the rerun command.

Runs the deliberately failing scenario (``scenarios/test_demo_failure.py``)
in a pytest of its own, against this run's stack, and reads what it left.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from harness.state import StackState

ROOT = Path(__file__).resolve().parents[2]
DEMO = "scenarios/test_demo_failure.py"


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

    ran = run_scenarios(
        DEMO, "-m", "demo_failure", "--seed", "4242",
        "--stack", "external", "--stack-state", str(state),
        f"--alluredir={results}",
    )  # fmt: skip

    assert ran.returncode == 1, ran.stdout + ran.stderr
    rerun = re.search(r"^harness: rerun the failures: (.+)$", ran.stdout, re.M)
    assert rerun, ran.stdout
    assert rerun.group(1) == (
        f"python -m pytest {DEMO}::test_demo_failure_certificate_before_the_lessons "
        f"--seed 4242 --stack external --stack-state {state}"
    )
    [result] = [json.loads(path.read_text()) for path in results.glob("*-result.json")]
    assert result["status"] == "failed"
    environment = (results / "environment.properties").read_text().splitlines()
    assert {"seed=4242", "stack=campus"} <= set(environment), environment
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
    assert "Bearer ey" not in exchanges  # tokens are redacted
    request_id = re.findall(r"> x-request-id: (\S+)", exchanges)[-1]
    logs = attachment(results, result, "service log lines")
    complete_lines = [line for line in logs.splitlines() if request_id in line]
    assert any(line.startswith("learning") for line in complete_lines), logs
    assert any(line.startswith("gateway") for line in complete_lines), logs

    again = run_scenarios(*rerun.group(1).split()[3:])

    assert again.returncode == 1, again.stdout
    assert "1 failed" in again.stdout
