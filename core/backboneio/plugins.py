"""Builds the plugin manager: hookspecs, the core's defaults, then installed plugins.

Installed plugins are found through the ``backboneio`` entry point group.
Each one loads in its own ``try``: a broken plugin is reported and skipped,
unless the settings enabled it by name, in which case start-up stops.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from .default_plugins import DEFAULT_PLUGINS
from .errors import ConfigurationError
from .settings import Setting, Settings

ENTRY_POINT_GROUP = "backboneio"
log = logging.getLogger("backboneio")


@dataclass
class PluginInfo:
    name: str
    version: str | None
    distribution: str | None
    hooks: list[str] = field(default_factory=list)
    default: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "hooks": self.hooks,
            "default": self.default,
        }


def installed_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _distribution_name(ep: EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def get_plugin_manager(
    enabled: Iterable[str] | None = None, *, extra: Iterable[Any] = ()
) -> pluggy.PluginManager:
    """A plugin manager with the defaults and the enabled installed plugins registered.

    ``enabled`` is the PLUGINS setting: None enables every installed plugin,
    a list enables those whose entry point or distribution name it holds.
    ``extra`` registers plugin objects directly (handy in tests and scripts).
    """
    pm = pluggy.PluginManager("backboneio")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)

    wanted = None if enabled is None else set(enabled)
    found: set[str] = set()
    for ep in installed_entry_points():
        names = {ep.name, _distribution_name(ep)}
        if wanted is not None and not names & wanted:
            continue
        found |= names & (wanted or set())
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            if wanted is not None:
                raise ConfigurationError(f"Plugin {ep.name!r} failed to load: {exc}") from exc
            log.error("Skipping plugin %r: it failed to load: %s", ep.name, exc)
            continue
    if wanted is not None and wanted - found:
        missing = sorted(wanted - found)
        installed = sorted(ep.name for ep in installed_entry_points())
        raise ConfigurationError(
            f"PLUGINS names {', '.join(missing)}, which is not installed; "
            f"installed plugins: {', '.join(installed) or 'none'}"
        )
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def load_plugins(settings: Settings, *, extra: Iterable[Any] = ()) -> pluggy.PluginManager:
    """Enable the plugins the settings name, let them declare settings, then check them."""
    pm = get_plugin_manager(settings.PLUGINS, extra=extra)
    for impl in pm.hook.register_settings.get_hookimpls():
        # Each plugin gets a register() that knows its name, so two plugins
        # declaring one setting are caught and reported by name.
        def register(
            name: str,
            default: Any = None,
            description: str = "",
            *,
            _owner: str = impl.plugin_name,
        ) -> None:
            settings.declare(Setting(name, default, description, _owner))

        impl.function(register=register)
    settings.check()
    return pm


def describe_plugins(
    pm: pluggy.PluginManager, *, include_defaults: bool = False
) -> list[PluginInfo]:
    """What ``backboneio plugins`` prints: name, version and hooks of each plugin."""
    dists = {ep.name: ep.dist for ep in installed_entry_points()}
    infos = []
    for name, plugin in pm.list_name_plugin():
        default = name in DEFAULT_PLUGINS
        if default and not include_defaults:
            continue
        dist = dists.get(name)
        hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
        infos.append(
            PluginInfo(
                name=name,
                version=dist.version if dist else None,
                distribution=dist.name if dist else ("backboneio" if default else None),
                hooks=hooks,
                default=default,
            )
        )
    return sorted(infos, key=lambda i: (i.default, i.name))
