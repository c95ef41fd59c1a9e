"""Root conftest: registers the shared platform fixtures (tests/platform_fixtures.py)."""

pytest_plugins = ["tests.platform_fixtures"]
