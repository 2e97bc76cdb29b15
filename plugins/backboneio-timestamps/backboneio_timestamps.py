"""Stamps ``created_at`` and ``updated_at`` (UTC, ISO 8601) on models.

# settings.py
TIMESTAMPS_BACKENDS = ["messages"]   # or True for every backend
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from backboneio import Backend, Request, Response, hookimpl
from backboneio.settings import Settings


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register("TIMESTAMPS_BACKENDS", [], "Backends whose models get timestamps; True for all.")


@hookimpl
def prepare_backend(name: str, backend: Backend, settings: Settings) -> None:
    chosen = settings.TIMESTAMPS_BACKENDS
    if chosen is True or name in chosen:
        backend.use("create", "update", "patch", stamp)


def stamp(req: Request, res: Response, next: Callable[..., None]) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    if req.method == "create":
        req.model["created_at"] = now
    req.model["updated_at"] = now
    next()
