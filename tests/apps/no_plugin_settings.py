"""Sets the test plugin's setting while leaving the plugin out: must be refused."""

PLUGINS: list[str] = []
TESTPLUGIN = True
