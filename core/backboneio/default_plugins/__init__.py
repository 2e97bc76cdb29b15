"""The core's own behaviour, registered as plugins like any other.

Registered before the installed plugins and marked ``trylast``, so any
installed plugin answering the same hook is asked first.
"""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "backboneio.default_plugins.memory_store",
    "backboneio.default_plugins.event_name",
    "backboneio.default_plugins.login_required",
)
