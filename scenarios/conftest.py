"""Scenario selection: demonstrations of failure run only when asked for."""

from __future__ import annotations

import pytest

DEMO = "demo_failure"


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect ``demo_failure`` scenarios unless ``-m`` or a node id names them."""
    if DEMO in (config.getoption("markexpr") or ""):
        return
    named = {arg for arg in config.args if "::" in arg}
    kept, dropped = [], []
    for item in items:
        demo = item.get_closest_marker(DEMO) is not None
        wanted = any(item.nodeid.startswith(arg) for arg in named)
        (dropped if demo and not wanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
