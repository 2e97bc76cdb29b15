"""Settings: upper-case attributes of an ordinary Python module.

``backboneio serve --settings mysettings`` (or ``BACKBONEIO_SETTINGS``) names
the module. Only names the core or an enabled plugin declared are allowed, so
a typo stops start-up instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from .errors import ConfigurationError
from .requestlog import FORMATS as LOG_FORMATS
from .requestlog import LEVELS as LOG_LEVELS

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
    Setting(
        "CHANGE_LOG_MAX_AGE",
        300.0,
        "Seconds a write stays in the change log for clients resuming after a disconnect.",
    ),
    Setting(
        "CHANGE_LOG_MAX_ENTRIES",
        1000,
        "Newest writes each stream keeps for resuming clients (0 keeps none).",
    ),
    Setting("SYNC_TIMEOUT", 30.0, "Seconds a backend may take before the client gets a Timeout."),
    Setting(
        "IDEMPOTENCY_TTL",
        86400.0,
        "Seconds a write's idempotencyKey is remembered, so a retry is not applied twice.",
    ),
    Setting(
        "IDEMPOTENCY_MAX_KEYS",
        10_000,
        "Answers to keyed writes each server process remembers in memory (0: none).",
    ),
    Setting(
        "PRESENCE_MAX_BYTES",
        1024,
        "Bytes of JSON a client's presence state may have; a larger one is refused.",
    ),
    Setting(
        "PRESENCE_GRACE",
        3.0,
        "Seconds a dropped connection stays a presence member, so a reconnect does not flicker.",
    ),
    Setting(
        "LIVE_QUERIES_PER_CLIENT",
        32,
        "Live queries one socket may hold on one backend; a subscribe past it is refused.",
    ),
    Setting(
        "LIVE_QUERY_MAX_MODELS",
        10_000,
        "Models a live query's filter may match when it subscribes (the server holds them).",
    ),
    Setting("MAX_CONNECTIONS", 20_000, "Connections one server process holds at once."),
    Setting("LISTEN_BACKLOG", 4096, "Connections the kernel queues before they are accepted."),
    Setting("WEBSOCKET_COMPRESSION", False, "Negotiate permessage-deflate if a client offers it."),
    Setting("TCP_NODELAY", True, "Send small packets at once instead of waiting (Nagle off)."),
    Setting("HEADER_TIMEOUT", 10.0, "Seconds a client has to send a request's line and headers."),
    Setting("IDLE_TIMEOUT", 60.0, "Seconds a request body or response may stall before closing."),
    Setting(
        "SHUTDOWN_TIMEOUT",
        10.0,
        "Seconds SIGTERM waits for requests in progress before closing every connection.",
    ),
    Setting("HEALTH_CHECKS", True, "Answer GET /healthz and /readyz (for load balancers)."),
    Setting(
        "LOG_LEVEL",
        "INFO",
        "Lowest level `backboneio serve` logs: DEBUG, INFO (a line per sync), WARNING, ERROR.",
    ),
    Setting("LOG_FORMAT", "text", "How `backboneio serve` logs: text, or json (an object a line)."),
)

# Keys of a BACKENDS entry the core itself reads; stores declare their own.
BACKEND_KEYS: frozenset[str] = frozenset(
    {
        "store",
        "id_attribute",
        "middleware",
        "event",
        "login_required",
        "change_log_max_age",
        "change_log_max_entries",
        "versioned",
        "version_attribute",
    }
)


def _is_setting_name(name: str) -> bool:
    return name.isupper() and not name.startswith("_")


class SettingsErrors(ConfigurationError):
    """Every problem :meth:`Settings.check` found, one message each (``messages``)."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _load_module(target: str) -> tuple[types.ModuleType, str]:
    """Import a settings module by dotted name, or run a ``.py`` file by path."""
    if target.endswith(".py") or os.sep in target or (os.altsep and os.altsep in target):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"Settings file {target!r} does not exist")
        # Like `python path/to/file.py`: modules beside the settings file import.
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"Settings file {target!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigurationError(
                f"Cannot load settings file {target!r}: {_one_line(exc)}"
            ) from exc
        return module, f"settings file {target!r}"
    try:
        module = importlib.import_module(target)
    except ImportError as exc:
        raise ConfigurationError(f"Cannot import settings module {target!r}: {exc}") from exc
    except Exception as exc:  # a SyntaxError or a failing line in the module itself
        raise ConfigurationError(
            f"Cannot import settings module {target!r}: {_one_line(exc)}"
        ) from exc
    return module, f"settings module {target!r}"


class Settings:
    """Setting values with their defaults; read them as attributes (``settings.DEBUG``)."""

    def __init__(
        self, values: Mapping[str, Any] | None = None, *, source: str = "defaults"
    ) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.source = source
        self.declared: dict[str, Setting] = {s.name: s for s in CORE_SETTINGS}
        # Names in a settings module that are not upper case, so not settings,
        # kept to catch `backends = ...` meant as BACKENDS.
        self.other_names: set[str] = set()
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
        """Load a settings module by dotted name (importable from the current
        directory) or by the path of a ``.py`` file."""
        module_name = module_name or os.environ.get(ENVIRONMENT_VARIABLE)
        if not module_name:
            return cls()
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        module, source = _load_module(module_name)
        values = {k: getattr(module, k) for k in dir(module) if _is_setting_name(k)}
        settings = cls(values, source=source)
        settings.other_names = {
            k
            for k, v in vars(module).items()
            if not k.startswith("_") and k not in values and not isinstance(v, types.ModuleType)
        }
        return settings

    def memo(self, key: str, build: Callable[[], T], *, fresh: bool = False) -> T:
        """A value built once for these settings (one server's): a plugin keeps
        what it parsed from its settings here, instead of parsing per request.
        ``fresh`` builds it again (at start-up, to report errors right away)."""
        if fresh or key not in self._memo:
            self._memo[key] = build()
        # One dict holds every plugin's values; each key holds what its build returned.
        return cast(T, self._memo[key])

    def declare(self, setting: Setting) -> None:
        if setting.name in self.declared and self.declared[setting.name].plugin != setting.plugin:
            owner = self.declared[setting.name].plugin
            raise ConfigurationError(
                f"Setting {setting.name} is declared by both {owner} and {setting.plugin}"
            )
        self.declared[setting.name] = setting

    def check(self) -> None:
        """Refuse unknown names and core settings of the wrong type, reporting
        every problem at once (as :class:`SettingsErrors`), not only the first."""
        errors = self.problems()
        if errors:
            raise SettingsErrors(errors)

    def _nearest(self, name: str) -> str | None:
        upper = name.upper()
        if upper in self.declared:
            return upper
        matches = difflib.get_close_matches(upper, self.declared, n=1, cutoff=0.75)
        return matches[0] if matches else None

    def problems(self) -> list[str]:
        """What :meth:`check` would refuse, one message per problem."""
        errors: list[str] = []
        for name in self.values:
            if name not in self.declared:
                near = self._nearest(name)
                hint = (
                    f"did you mean {near}?"
                    if near
                    else "known settings: " + ", ".join(sorted(self.declared))
                )
                errors.append(f"Unknown setting {name} in {self.source}; {hint}")
        for name in sorted(self.other_names):
            if name.upper() in self.declared:
                errors.append(
                    f"{name} in {self.source} is not a setting: setting names are upper case; "
                    f"did you mean {name.upper()}?"
                )
        errors += self._type_problems()
        return errors

    def _type_problems(self) -> list[str]:
        errors: list[str] = []

        def expect(name: str, types: type | tuple[type, ...], what: str) -> bool:
            value = self.get(name)
            # bool is an int in Python, but PORT = True is a mistake
            if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
                errors.append(f"Setting {name} must be {what}, got {value!r}")
                return False
            return True

        expect("EVENT", str, "a string")
        expect("DEBUG", bool, "True or False")
        expect("HOST", str, "a string")
        if expect("PORT", int, "an integer") and not 0 <= self.PORT <= 65535:
            errors.append(f"Setting PORT must be between 0 and 65535, got {self.PORT!r}")
        expect("MAX_MESSAGE_SIZE", int, "a number of characters")
        expect("SYNC_TIMEOUT", (int, float), "a number of seconds")
        if expect("IDEMPOTENCY_TTL", (int, float), "a number of seconds") and not (
            self.IDEMPOTENCY_TTL > 0
        ):
            errors.append(
                f"Setting IDEMPOTENCY_TTL must be a positive number of seconds, "
                f"got {self.IDEMPOTENCY_TTL!r}"
            )
        if (
            expect("IDEMPOTENCY_MAX_KEYS", int, "a number of keys")
            and self.IDEMPOTENCY_MAX_KEYS < 0
        ):
            errors.append(
                f"Setting IDEMPOTENCY_MAX_KEYS must be 0 or more, got {self.IDEMPOTENCY_MAX_KEYS!r}"
            )
        if expect("PRESENCE_MAX_BYTES", int, "a number of bytes") and self.PRESENCE_MAX_BYTES < 2:
            errors.append(
                f"Setting PRESENCE_MAX_BYTES must be at least 2 (the bytes of {{}}), "
                f"got {self.PRESENCE_MAX_BYTES!r}"
            )
        if expect("PRESENCE_GRACE", (int, float), "a number of seconds") and not (
            self.PRESENCE_GRACE >= 0
        ):
            errors.append(
                f"Setting PRESENCE_GRACE must be 0 or more seconds, got {self.PRESENCE_GRACE!r}"
            )
        for name in ("LIVE_QUERIES_PER_CLIENT", "LIVE_QUERY_MAX_MODELS"):
            if expect(name, int, "a whole number") and self.get(name) < 1:
                errors.append(f"Setting {name} must be at least 1, got {self.get(name)!r}")
        for name in ("MAX_CONNECTIONS", "LISTEN_BACKLOG"):
            if expect(name, int, "a number of connections") and self.get(name) < 1:
                errors.append(f"Setting {name} must be at least 1, got {self.get(name)!r}")
        expect("WEBSOCKET_COMPRESSION", bool, "True or False")
        expect("TCP_NODELAY", bool, "True or False")
        expect("HEALTH_CHECKS", bool, "True or False")
        level = self.LOG_LEVEL
        if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
            errors.append(
                f"Setting LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}"
            )
        if self.LOG_FORMAT not in LOG_FORMATS:
            errors.append(f"Setting LOG_FORMAT must be 'text' or 'json', got {self.LOG_FORMAT!r}")
        if expect("SHUTDOWN_TIMEOUT", (int, float), "a number of seconds") and (
            isinstance(self.SHUTDOWN_TIMEOUT, bool) or self.SHUTDOWN_TIMEOUT < 0
        ):
            errors.append(
                f"Setting SHUTDOWN_TIMEOUT must be 0 or more seconds, got {self.SHUTDOWN_TIMEOUT!r}"
            )
        for name in ("HEADER_TIMEOUT", "IDLE_TIMEOUT"):
            value = self.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
            ):
                errors.append(
                    f"Setting {name} must be a positive number of seconds or None, got {value!r}"
                )
        backends_ok = expect("BACKENDS", dict, "a dict of backend name -> dict")
        if isinstance(self.EVENT, str) and not self.EVENT:
            errors.append("Setting EVENT must not be empty")
        plugins = self.PLUGINS
        if plugins is not None and (
            isinstance(plugins, str)
            or not isinstance(plugins, Iterable)
            or not all(isinstance(p, str) for p in plugins)
        ):
            errors.append(f"Setting PLUGINS must be None or a list of names, got {plugins!r}")
        origins = self.CORS_ALLOWED_ORIGINS
        if not isinstance(origins, (str, list, tuple)) or not all(
            isinstance(o, str) for o in self.cors_origins
        ):
            errors.append(
                f"Setting CORS_ALLOWED_ORIGINS must be a list of origins, got {origins!r}"
            )
        for name, config in self.BACKENDS.items() if backends_ok else ():
            if not isinstance(name, str) or not name or "/" in name:
                errors.append(f"Backend name {name!r} must be a non-empty string without '/'")
            if not isinstance(config, dict):
                errors.append(f"BACKENDS[{name!r}] must be a dict, got {config!r}")
        return errors

    @property
    def cors_origins(self) -> list[str]:
        origins = self.CORS_ALLOWED_ORIGINS
        return [origins] if isinstance(origins, str) else list(origins)


def unknown_keys(config: Mapping[str, Any], allowed: Iterable[str]) -> list[str]:
    allowed = set(allowed)
    return sorted(k for k in config if k not in allowed)
