"""Builds a running configuration from settings: plugins, stores, backends, server."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pluggy

from .backend import Backend, Middleware
from .default_plugins.login_required import required_actions
from .errors import ConfigurationError
from .plugins import load_plugins
from .server import Server, listen
from .settings import BACKEND_KEYS, Settings, unknown_keys
from .stores import StoreConfig, StoreType

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
    required_actions(config.get("login_required"), name)
    id_attribute = config.get("id_attribute", "id")
    if not isinstance(id_attribute, str) or not id_attribute:
        raise ConfigurationError(f"BACKENDS[{name!r}]['id_attribute'] must be a non-empty string")
    middleware_paths = config.get("middleware", [])
    if isinstance(middleware_paths, str):
        middleware_paths = [middleware_paths]

    backend = Backend(name, id_attribute=id_attribute)
    pm.hook.prepare_backend(name=name, backend=backend, config=config, settings=settings)
    for path in middleware_paths:
        mw = import_dotted(path, what=f"BACKENDS[{name!r}]['middleware']")
        if not callable(mw):
            raise ConfigurationError(f"BACKENDS[{name!r}]['middleware']: {path!r} is not callable")
        backend.use(mw)
    options = {**store_type.options, **{k: v for k, v in config.items() if k in store_type.options}}
    store_config = StoreConfig(name, id_attribute, options, settings)
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


def build_server(
    settings: Settings,
    app: Callable[..., Any] | None = None,
    *,
    extra_plugins: tuple[Any, ...] = (),
) -> Server:
    """The server ``backboneio serve`` runs: plugins, backends and Socket.IO from settings."""
    pm = load_plugins(settings, extra=extra_plugins)
    stores = store_types(pm)
    backends = {
        name: build_backend(name, config, settings, pm, stores)
        for name, config in settings.BACKENDS.items()
    }
    return listen(app, backends, settings=settings, plugins=pm)
