"""The default event prefix: the backend's ``event`` key, else the ``EVENT`` setting."""

from __future__ import annotations

from backboneio import hookimpl
from backboneio.settings import Settings


@hookimpl(trylast=True)
def event_name(backend: str, settings: Settings) -> str:
    config = settings.BACKENDS.get(backend, {})
    name: str = config.get("event") or settings.EVENT
    return name
