"""Settings of ``backboneio serve --demo``: the Messages and Todos backends."""

from importlib.util import find_spec

BACKENDS = {
    "messages": {"store": "memory"},
    "todos": {"store": "memory"},
}

# With backboneio-sqlalchemy installed the demo keeps its models in
# ./backboneio.sqlite3 across restarts; without it, in memory.
if find_spec("backboneio_sqlalchemy") is not None:
    for _backend in BACKENDS.values():
        _backend["store"] = "sqlalchemy"
