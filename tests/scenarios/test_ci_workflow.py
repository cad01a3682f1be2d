"""The CI workflow that runs the scenarios: what it may do, and on forks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "e2e.yml"


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def step(uses: str) -> dict[str, Any]:
    [found] = [s for s in workflow()["jobs"]["e2e"]["steps"] if s.get("uses") == uses]
    return found


def test_workflow_reads_code_and_writes_only_checks() -> None:
    assert workflow()["permissions"] == {"contents": "read", "checks": "write"}
    assert all("permissions" not in job for job in workflow()["jobs"].values())


def test_junit_results_of_a_fork_are_annotated_not_published_as_a_check() -> None:
    publish = step("mikepenz/action-junit-report@v4")

    assert publish["if"] == "always()"
    assert publish["with"]["report_paths"] == "reports/junit-e2e.xml"
    assert publish["with"]["annotate_only"] == (
        "${{ github.event_name == 'pull_request' && "
        "github.event.pull_request.head.repo.fork }}"
    )


def test_scenarios_run_on_pull_requests_and_main() -> None:
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = workflow()[True]

    assert "pull_request" in triggers
    assert triggers["push"] == {"branches": ["main"]}
    assert {"run": "make e2e", "name": "Run the scenarios"} in workflow()["jobs"][
        "e2e"
    ]["steps"]
