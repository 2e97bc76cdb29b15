"""Settings: upper-case attributes of an ordinary Python module.

``backboneio serve --settings mysettings`` (or ``BACKBONEIO_SETTINGS``) names
the module. Only names the core or an enabled plugin declared are allowed, so
a typo stops start-up instead of being silently ignored.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigurationError

ENVIRONMENT_VARIABLE = "BACKBONEIO_SETTINGS"
T = TypeVar("T")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    description: str = ""
    plugin: str = "backboneio"


CORE_SETTINGS: tuple[Setting, ...] = (
    Setting("PLUGINS", None, "Names of installed plugins to enable; None enables all."),
    Setting("EVENT", "backend", "Event prefix clients trigger: <event>:create and so on."),
    Setting("DEBUG", False, "Send exception details and stack traces to clients."),
    Setting("CORS_ALLOWED_ORIGINS", [], "Other origins allowed to connect ('*' for any)."),
    Setting("BACKENDS", {}, "Backend name -> {'store': ..., store options, 'middleware': [...]}"),
    Setting("HOST", "127.0.0.1", "Interface `backboneio serve` binds to."),
    Setting("PORT", 3000, "Port `backboneio serve` binds to."),
    Setting("MAX_MESSAGE_SIZE", 1_000_000, "Largest message, in JSON characters."),
    Setting("SYNC_TIMEOUT", 30.0, "Seconds a backend may take before the client gets a Timeout."),
)

# Keys of a BACKENDS entry the core itself reads; stores declare their own.
BACKEND_KEYS: frozenset[str] = frozenset(
    {"store", "id_attribute", "middleware", "event", "login_required"}
)


def _is_setting_name(name: str) -> bool:
    return name.isupper() and not name.startswith("_")


class Settings:
    """Setting values with their defaults; read them as attributes (``settings.DEBUG``)."""

    def __init__(
        self, values: Mapping[str, Any] | None = None, *, source: str = "defaults"
    ) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.source = source
        self.declared: dict[str, Setting] = {s.name: s for s in CORE_SETTINGS}
        self._memo: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Settings from {self.source}>"

    def __getattr__(self, name: str) -> Any:
        if not _is_setting_name(name):
            raise AttributeError(name)
        return self.get(name)

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.declared:
            return self.declared[name].default
        return default

    @classmethod
    def from_module(cls, module_name: str | None = None) -> Settings:
        """Load a settings module by dotted name, importable from the current directory."""
        module_name = module_name or os.environ.get(ENVIRONMENT_VARIABLE)
        if not module_name:
            return cls()
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"Cannot import settings module {module_name!r}: {exc}"
            ) from exc
        values = {k: getattr(module, k) for k in dir(module) if _is_setting_name(k)}
        return cls(values, source=f"settings module {module_name!r}")

    def memo(self, key: str, build: Callable[[], T], *, fresh: bool = False) -> T:
        """A value built once for these settings (one server's): a plugin keeps
        what it parsed from its settings here, instead of parsing per request.
        ``fresh`` builds it again (at start-up, to report errors right away)."""
        if fresh or key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def declare(self, setting: Setting) -> None:
        if setting.name in self.declared and self.declared[setting.name].plugin != setting.plugin:
            owner = self.declared[setting.name].plugin
            raise ConfigurationError(
                f"Setting {setting.name} is declared by both {owner} and {setting.plugin}"
            )
        self.declared[setting.name] = setting

    def check(self) -> None:
        """Refuse unknown names and core settings of the wrong type."""
        for name in self.values:
            if name not in self.declared:
                raise ConfigurationError(
                    f"Unknown setting {name} in {self.source}; known settings: "
                    + ", ".join(sorted(self.declared))
                )
        self._check_types()

    def _check_types(self) -> None:
        def expect(name: str, types: type | tuple[type, ...], what: str) -> None:
            value = self.get(name)
            # bool is an int in Python, but PORT = True is a mistake
            if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
                raise ConfigurationError(f"Setting {name} must be {what}, got {value!r}")

        expect("EVENT", str, "a string")
        expect("DEBUG", bool, "True or False")
        expect("HOST", str, "a string")
        expect("PORT", int, "an integer")
        expect("MAX_MESSAGE_SIZE", int, "a number of characters")
        expect("SYNC_TIMEOUT", (int, float), "a number of seconds")
        expect("BACKENDS", dict, "a dict of backend name -> dict")
        if not self.EVENT:
            raise ConfigurationError("Setting EVENT must not be empty")
        plugins = self.PLUGINS
        if plugins is not None and (
            isinstance(plugins, str) or not all(isinstance(p, str) for p in plugins)
        ):
            raise ConfigurationError(
                f"Setting PLUGINS must be None or a list of names, got {plugins!r}"
            )
        origins = self.CORS_ALLOWED_ORIGINS
        if not isinstance(origins, (str, list, tuple)) or not all(
            isinstance(o, str) for o in self.cors_origins
        ):
            raise ConfigurationError(
                f"Setting CORS_ALLOWED_ORIGINS must be a list of origins, got {origins!r}"
            )
        for name, config in self.BACKENDS.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise ConfigurationError(
                    f"Backend name {name!r} must be a non-empty string without '/'"
                )
            if not isinstance(config, dict):
                raise ConfigurationError(f"BACKENDS[{name!r}] must be a dict, got {config!r}")

    @property
    def cors_origins(self) -> list[str]:
        origins = self.CORS_ALLOWED_ORIGINS
        return [origins] if isinstance(origins, str) else list(origins)


def unknown_keys(config: Mapping[str, Any], allowed: Iterable[str]) -> list[str]:
    allowed = set(allowed)
    return sorted(k for k in config if k not in allowed)
