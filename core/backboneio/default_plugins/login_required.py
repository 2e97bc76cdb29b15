"""``login_required`` in a backend's settings: which actions need an identity.

    BACKENDS = {"messages": {"store": "memory",
                             "login_required": ["create", "update", "patch", "delete"]}}

``True`` means every sync method; ``"listen"`` may be listed too.
"""

from __future__ import annotations

from typing import Any

from backboneio import hookimpl
from backboneio.backend import METHODS
from backboneio.errors import ConfigurationError, Unauthorized
from backboneio.settings import Settings

ACTIONS = (*METHODS, "listen")


def required_actions(value: Any, backend: str) -> frozenset[str]:
    if value is True:
        return frozenset(METHODS)
    if not value:
        return frozenset()
    if isinstance(value, str) or not all(v in ACTIONS for v in value):
        raise ConfigurationError(
            f"BACKENDS[{backend!r}]['login_required'] must be True or a list of {ACTIONS}, "
            f"got {value!r}"
        )
    return frozenset(value)


@hookimpl(trylast=True)
def authorize(action: str, identity: Any, backend: str, settings: Settings) -> bool | None:
    config = settings.BACKENDS.get(backend, {})
    if identity is None and action in required_actions(config.get("login_required"), backend):
        raise Unauthorized(f"Log in to {action} on {backend!r}")
    return None
