"""Makes the shared fixtures (tests/support/fixtures.py) available to core and plugin tests."""

pytest_plugins = ["tests.support.fixtures"]
