"""The one builder: settings and Python-made backends become a hub, then a server.

``backboneio serve``, :func:`listen` and :class:`backboneio.Emitter` all go
through :func:`build_hub`, so a backend defined in settings is served the
same way beside a Flask app as on its own.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from . import runner
from .assets import WSGIApp
from .backend import Backend, Middleware
from .errors import ConfigurationError
from .hub import Hub
from .plugins import load_plugins
from .settings import BACKEND_KEYS, Settings, unknown_keys
from .socketio_adapter import Server, serve_hub
from .stores import StoreConfig, StoreType

log = logging.getLogger("backboneio")
DEFAULT_VERSION_ATTRIBUTE = "_version"

DEFAULT_STORE = "memory"


def import_dotted(path: str, *, what: str) -> Any:
    """``package.module.attr`` or ``package.module:attr``, with a message naming ``what``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(
            f"{what}: {path!r} is not a dotted path like 'package.module.name'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{what}: cannot import {module_name!r} for {path!r}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigurationError(f"{what}: module {module_name!r} has no {attr!r}") from None


def store_types(pm: pluggy.PluginManager) -> dict[str, StoreType]:
    stores: dict[str, StoreType] = {}

    def register(
        name: str,
        factory: Callable[[StoreConfig], Middleware],
        options: dict[str, Any] | None = None,
        description: str = "",
    ) -> None:
        # Hooks run newest plugin first; the first registration of a name wins
        # so an installed plugin can replace a default store.
        stores.setdefault(name, StoreType(name, factory, dict(options or {}), description))

    pm.hook.register_stores(register=register)
    return stores


def build_backend(
    name: str,
    config: dict[str, Any],
    settings: Settings,
    pm: pluggy.PluginManager,
    stores: dict[str, StoreType],
    hub: Hub,
) -> Backend:
    store_name = config.get("store", DEFAULT_STORE)
    store_type = stores.get(store_name)
    if store_type is None:
        raise ConfigurationError(
            f"BACKENDS[{name!r}] uses store {store_name!r}, which no enabled plugin provides "
            f"(is its plugin installed?); known stores: {', '.join(sorted(stores))}"
        )
    unknown = unknown_keys(config, BACKEND_KEYS | set(store_type.options))
    if unknown:
        raise ConfigurationError(
            f"BACKENDS[{name!r}] has unknown key(s) {', '.join(unknown)}; store {store_name!r} "
            f"reads {', '.join(sorted(store_type.options)) or 'no keys'}, the core reads "
            f"{', '.join(sorted(BACKEND_KEYS))}"
        )
    from .default_plugins.login_required import required_actions  # it imports backboneio

    required_actions(config.get("login_required"), name)
    id_attribute = config.get("id_attribute", "id")
    if not isinstance(id_attribute, str) or not id_attribute:
        raise ConfigurationError(f"BACKENDS[{name!r}]['id_attribute'] must be a non-empty string")
    middleware_paths = config.get("middleware", [])
    if isinstance(middleware_paths, str):
        middleware_paths = [middleware_paths]

    version_attribute = _version_attribute(name, config)
    backend = Backend(name, id_attribute=id_attribute)
    pm.hook.prepare_backend(name=name, backend=backend, config=config, settings=settings, hub=hub)
    for path in middleware_paths:
        mw = import_dotted(path, what=f"BACKENDS[{name!r}]['middleware']")
        if not callable(mw):
            raise ConfigurationError(f"BACKENDS[{name!r}]['middleware']: {path!r} is not callable")
        backend.use(mw)
    options = {**store_type.options, **{k: v for k, v in config.items() if k in store_type.options}}
    store_config = StoreConfig(
        name, id_attribute, options, settings, version_attribute=version_attribute
    )
    try:
        store = store_type.factory(store_config)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"BACKENDS[{name!r}]: store {store_name!r} could not start: {exc}"
        ) from exc
    backend.use(store)
    return backend


def _version_attribute(name: str, config: dict[str, Any]) -> str | None:
    versioned = config.get("versioned", False)
    if not isinstance(versioned, bool):
        raise ConfigurationError(f"BACKENDS[{name!r}]['versioned'] must be True or False")
    attribute = config.get("version_attribute", DEFAULT_VERSION_ATTRIBUTE)
    if not isinstance(attribute, str) or not attribute:
        raise ConfigurationError(
            f"BACKENDS[{name!r}]['version_attribute'] must be a non-empty string"
        )
    if "version_attribute" in config and not versioned:
        raise ConfigurationError(
            f"BACKENDS[{name!r}] sets version_attribute without versioned: True"
        )
    return attribute if versioned else None


def as_backend(name: str, backend: Any) -> Backend:
    if isinstance(backend, Backend):
        return backend
    if callable(backend):  # a lone middleware, such as a store
        return Backend(name).use(backend)
    raise TypeError(f"Backend {name!r} must be a Backend or a middleware, got {backend!r}")


def build_hub(
    settings: Settings,
    backends: Mapping[str, Any] | None = None,
    *,
    plugins: pluggy.PluginManager | None = None,
    extra_plugins: tuple[Any, ...] = (),
) -> Hub:
    """The running configuration: plugins, the backends of ``settings.BACKENDS``
    and ``backends`` (built in Python), the change log."""
    pm = plugins if plugins is not None else load_plugins(settings, extra=extra_plugins)
    hub = Hub(settings, pm)
    stores = store_types(pm)
    given_backends = dict(backends or {})
    for name, config in settings.BACKENDS.items():
        if name not in given_backends:
            hub.add_backend(name, build_backend(name, config, settings, pm, stores, hub), config)
    for name, given in given_backends.items():
        # A backend built in Python may still take its options (login_required,
        # event, retention) from a BACKENDS entry of the same name.
        config = dict(settings.BACKENDS.get(name, {}))
        built_here = sorted(k for k in ("store", "middleware") if k in config)
        if built_here:
            raise ConfigurationError(
                f"BACKENDS[{name!r}] sets {', '.join(built_here)}, but {name!r} is also given "
                "to listen() as a Python backend; define its stack in one place"
            )
        backend = as_backend(name, given)
        # prepare_backend's middleware runs first, as for backends from settings.
        prefix = Backend(name, id_attribute=backend.id_attribute)
        pm.hook.prepare_backend(
            name=name, backend=prefix, config=config, settings=settings, hub=hub
        )
        backend.layers[:0] = prefix.layers
        hub.add_backend(name, backend, config)
    hub.prepare()
    return hub


def listen(
    app: WSGIApp | None,
    backends: Mapping[str, Any] | None = None,
    event: str = "backend",
    *,
    settings: Settings | None = None,
    plugins: pluggy.PluginManager | None = None,
    **socketio_options: Any,
) -> Server:
    """Serve ``backends``, and those of ``settings.BACKENDS``, over Socket.IO in
    front of the WSGI ``app`` (or alone).

    Returns the :class:`Server` (a ``socketio.Server``) for further
    customisation; serve ``server.app`` (or call :func:`backboneio.run`).
    """
    if settings is None:
        settings = Settings({"EVENT": event})
    hub = build_hub(settings, backends, plugins=plugins)
    return serve_hub(hub, app, **socketio_options)


def build_server(
    settings: Settings,
    app: Callable[..., Any] | None = None,
    *,
    extra_plugins: tuple[Any, ...] = (),
) -> Server:
    """The server ``backboneio serve`` runs: plugins, backends and Socket.IO from settings."""
    return listen(app, settings=settings, plugins=load_plugins(settings, extra=extra_plugins))


def run(server: Server, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Serve ``server.app`` under eventlet until SIGTERM or SIGINT, then drain."""
    runner.serve(
        server.app,
        host,
        port,
        settings=server.settings,
        on_ready=lambda url: log.warning("backboneio on %s", url),
        shutdown=server.shutdown,
    )
