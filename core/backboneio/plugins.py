"""Builds the plugin manager: hookspecs, the core's defaults, then installed plugins.

Installed plugins are found through the ``backboneio`` entry point group.
Each one loads in its own ``try``: a broken plugin (one that fails to import,
implements a hook that does not exist, or takes arguments its hook does not
pass) is reported in one line and skipped, unless the settings enabled it by
name, in which case start-up stops with that line.

Plugins that exist only for backboneio's own tests use the ``backboneio.tests``
group instead: they are loaded when ``BACKBONEIO_TEST_PLUGINS=1`` is set or when
``PLUGINS`` names them, so a development install never shows them to users.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from .default_plugins import DEFAULT_PLUGINS
from .errors import ConfigurationError
from .settings import Setting, Settings

ENTRY_POINT_GROUP = "backboneio"
TEST_ENTRY_POINT_GROUP = "backboneio.tests"
TEST_PLUGINS_VARIABLE = "BACKBONEIO_TEST_PLUGINS"
HOOK_NAMES: tuple[str, ...] = tuple(
    sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "backboneio_spec"))
)
log = logging.getLogger("backboneio")

Report = Callable[[str], None]


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


def _test_plugins_enabled() -> bool:
    return os.environ.get(TEST_PLUGINS_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


def installed_entry_points(*, test_plugins: bool | None = None) -> list[EntryPoint]:
    """The ``backboneio`` entry points, and the test-only ones if enabled
    (``test_plugins``, or by default the ``BACKBONEIO_TEST_PLUGINS`` variable)."""
    if test_plugins is None:
        test_plugins = _test_plugins_enabled()
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if test_plugins:
        found += entry_points(group=TEST_ENTRY_POINT_GROUP)
    return sorted(found, key=lambda ep: ep.name)


def _distribution_name(ep: EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def nearest_hook(name: str) -> str | None:
    """The hook a misspelled hook name most likely meant, if any is close."""
    matches = difflib.get_close_matches(name, HOOK_NAMES, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _required_args(function: Any) -> list[str] | None:
    # What pluggy passes by name: parameters without defaults (not self).
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    return [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def hook_problems(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Why ``plugin``'s hook implementations cannot be registered, one phrase each."""
    problems = []
    for attr in dir(plugin):
        try:
            opts = pm.parse_hookimpl_opts(plugin, attr)
        except Exception:  # an attribute that cannot even be read is not a hookimpl
            continue
        if opts is None:
            continue
        hook = opts.get("specname") or attr
        caller = getattr(pm.hook, hook, None)
        spec = getattr(caller, "spec", None)
        if spec is None:
            if opts.get("optionalhook"):
                continue
            near = nearest_hook(hook)
            hint = f"did you mean {near}?" if near else f"known hooks: {', '.join(HOOK_NAMES)}"
            problems.append(f"hook {hook} is not a backboneio hook ({hint})")
            continue
        args = _required_args(getattr(plugin, attr))
        unknown = [a for a in args or () if a not in spec.argnames]
        if unknown:
            problems.append(
                f"hook {hook} takes {', '.join(unknown)}, which {hook} does not pass "
                f"(it passes {', '.join(spec.argnames)})"
            )
    return problems


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _register(pm: pluggy.PluginManager, plugin: Any, name: str | None) -> None:
    """Register ``plugin`` or raise ConfigurationError with the one-line reason."""
    label = repr(name) if name else repr(plugin)
    problems = hook_problems(pm, plugin)
    if problems:
        raise ConfigurationError(f"Plugin {label}: {'; '.join(problems)}")
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:  # anything hook_problems did not foresee
        raise ConfigurationError(f"Plugin {label}: {_one_line(exc)}") from exc


def get_plugin_manager(
    enabled: Iterable[str] | None = None,
    *,
    extra: Iterable[Any] = (),
    report: Report | None = None,
    strict: bool = True,
) -> pluggy.PluginManager:
    """A plugin manager with the defaults and the enabled installed plugins registered.

    ``enabled`` is the PLUGINS setting: None enables every installed plugin,
    a list enables those whose entry point or distribution name it holds.
    ``extra`` registers plugin objects directly (handy in tests and scripts).
    A broken plugin is skipped and its one-line reason given to ``report``
    (default: logged at ERROR), except one that ``enabled`` names while
    ``strict``: that raises ConfigurationError.
    """
    report = report or log.error
    pm = pluggy.PluginManager("backboneio")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)

    wanted = None if enabled is None else set(enabled)
    candidates = installed_entry_points()
    if wanted is not None:  # naming a test-only plugin enables it
        known = {ep.name for ep in candidates}
        candidates += [
            ep
            for ep in entry_points(group=TEST_ENTRY_POINT_GROUP)
            if ep.name not in known and {ep.name, _distribution_name(ep)} & wanted
        ]
    found: set[str] = set()
    for ep in candidates:
        names = {ep.name, _distribution_name(ep)}
        if wanted is not None and not names & wanted:
            continue
        found |= {name for name in names if name is not None} & (wanted or set())
        try:
            try:
                plugin = ep.load()
            except Exception as exc:
                raise ConfigurationError(
                    f"Plugin {ep.name!r} failed to load: {_one_line(exc)}"
                ) from exc
            _register(pm, plugin, ep.name)
        except ConfigurationError as exc:
            if wanted is not None and strict:
                raise
            report(f"{exc}; skipped it")
    if wanted is not None and wanted - found:
        missing = sorted(wanted - found)
        installed = sorted(ep.name for ep in installed_entry_points())
        raise ConfigurationError(
            f"PLUGINS names {', '.join(missing)}, which is not installed; "
            f"installed plugins: {', '.join(installed) or 'none'}"
        )
    for plugin in extra:
        _register(pm, plugin, None)
    pm.check_pending()
    return pm


def load_plugins(
    settings: Settings,
    *,
    extra: Iterable[Any] = (),
    report: Report | None = None,
    strict: bool = True,
) -> pluggy.PluginManager:
    """Enable the plugins the settings name, let them declare settings, then check them."""
    pm = get_plugin_manager(settings.PLUGINS, extra=extra, report=report, strict=strict)
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
    dists = {ep.name: ep.dist for ep in installed_entry_points(test_plugins=True)}
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
