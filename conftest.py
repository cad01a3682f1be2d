"""Root conftest: the harness plugin itself is registered by the ``pytest11`` entry
point when the project is installed; here we enable pytest's own pytester, which
the plugin's tests use to run pytest from the outside, and the scenario fixtures
(factories, admin, learners) from ``fixtures/``."""

pytest_plugins = ("pytester", "fixtures.plugin")
