"""Makes the shared fixtures available to core and plugin tests: servers and
clients (tests/support/fixtures.py), npm libraries and Chromium (tests/support/browser.py)."""

pytest_plugins = ["tests.support.fixtures", "tests.support.browser", "tests.support.cluster"]
