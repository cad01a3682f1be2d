"""Every scenario says where it belongs in the report: epic, feature and story."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
LABELLED = sorted(path.stem for path in SCENARIOS.glob("test_*.py"))


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"labelled_{name}", SCENARIOS / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def labels(module: ModuleType, test: object) -> dict[str, list[str]]:
    """A test's allure labels by type, from its module's marks and its own."""
    marks = [
        getattr(mark, "mark", mark)
        for mark in [
            *getattr(module, "pytestmark", []),
            *getattr(test, "pytestmark", []),
        ]
    ]
    found: dict[str, list[str]] = {}
    for mark in marks:
        if mark.name == "allure_label":
            found.setdefault(mark.kwargs["label_type"], []).extend(mark.args)
    return found


@pytest.mark.parametrize("name", LABELLED)
def test_every_scenario_has_an_epic_a_feature_and_a_story(name: str) -> None:
    module = load(name)
    tests = [
        (test_name, test)
        for test_name, test in inspect.getmembers(module, inspect.isfunction)
        if test_name.startswith("test_") and test.__module__ == module.__name__
    ]

    assert tests
    for test_name, test in tests:
        found = labels(module, test)
        for kind in ("epic", "feature", "story"):
            assert len(found.get(kind, [])) == 1, (test_name, kind, found)
        assert all(story.strip() for story in found["story"]), test_name
