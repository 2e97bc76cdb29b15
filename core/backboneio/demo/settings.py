"""Settings of ``backboneio serve --demo``: the Messages and Todos backends."""

BACKENDS = {
    "messages": {"store": "memory"},
    "todos": {"store": "memory"},
}
