"""Root conftest: the harness plugin itself is registered by the ``pytest11`` entry
point when the project is installed; here we only enable pytest's own pytester,
which the plugin's tests use to run pytest from the outside."""

pytest_plugins = ("pytester",)
