"""A plugin implementing backboneio's hooks, installed through a real entry point.

It is installed in every test environment, so each hook does nothing unless
the settings module sets ``TESTPLUGIN = True``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import socketio
from backboneio import ConnectionRefused, Forbidden, hookimpl
from backboneio.backend import Backend, Request
from backboneio.settings import Settings
from backboneio.stores import StoreConfig


def _on(settings: Settings | None) -> bool:
    return bool(settings is not None and settings.get("TESTPLUGIN"))


def _log(settings: Settings, record: dict[str, Any]) -> None:
    path = settings.get("TESTPLUGIN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register("TESTPLUGIN", False, "Turn the test plugin's hooks on.")
    register("TESTPLUGIN_LOG", None, "File the test plugin appends JSON lines to.")
    register("TESTPLUGIN_MANAGER", False, "Provide the client manager (a counting one).")


def fixed_store(config: StoreConfig) -> Callable[..., None]:
    """Answers reads with the models in its settings; refuses writes."""
    models = list(config.options["models"])

    def store(req: Request, res: Any, next: Callable[..., None]) -> None:
        if req.method != "read":
            raise Forbidden(f"{config.backend} is read-only")
        res.end(models)

    return store


@hookimpl
def register_stores(register: Callable[..., None]) -> None:
    register("fixed", fixed_store, options={"models": []}, description="Read-only models.")


@hookimpl
def prepare_backend(
    name: str, backend: Backend, config: dict[str, Any], settings: Settings
) -> None:
    if not _on(settings):
        return

    def stamp(req: Request, res: Any, next: Callable[..., None]) -> None:
        req.model["stamped_by"] = "testplugin"
        next()

    backend.use("create", stamp)


@hookimpl
def event_name(backend: str, settings: Settings) -> str | None:
    if _on(settings) and backend == "custom-event":
        return "plugin-event"
    return None


@hookimpl
def authenticate(environ: dict[str, Any], auth: Any, backend: str, settings: Settings) -> Any:
    if not _on(settings) or not isinstance(auth, dict):
        return None
    if "refuse" in auth:
        raise ConnectionRefused(auth["refuse"])
    if "crash" in auth:
        raise RuntimeError("secret-token-abc leaked?")
    if "expires_in" in auth:
        identity = ExpiringIdentity(auth.get("user"))
        identity.expires_at = time.time() + float(auth["expires_in"])
        return identity
    return auth.get("user")


@hookimpl
def authorize(action: str, identity: Any, req: Request | None, settings: Settings) -> bool | None:
    if not _on(settings):
        return None
    if req is not None and action == "delete" and req.model.get("protected"):
        return False
    return None


@hookimpl
def authorize_broadcast(identity: Any, model: Any) -> bool | None:
    # Not gated on TESTPLUGIN (this hook gets no settings): it only ever
    # concerns models marked "secret", which other tests do not write.
    if isinstance(model, dict) and model.get("secret"):
        return identity == model.get("owner")
    return None


@hookimpl
def client_manager(settings: Settings) -> Any:
    if not (_on(settings) and settings.get("TESTPLUGIN_MANAGER")):
        return None
    return CountingManager(settings)


class CountingManager(socketio.Manager):
    """The default in-process manager, logging each broadcast it is asked for."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def emit(self, event: str, data: Any, namespace: str, room: Any = None, **kwargs: Any) -> Any:
        if event == "synced":
            _log(self.settings, {"hook": "client_manager", "namespace": namespace, "room": room})
        return super().emit(event, data, namespace, room=room, **kwargs)


@hookimpl
def configure_server(sio: Any, settings: Settings, hub: Any) -> None:
    if not _on(settings):
        return
    for name in hub.backends:

        def whoami(sid: str, *args: Any, _backend: str = name) -> Any:
            return hub.client(_backend, sid).identity

        sio.on("whoami", whoami, namespace=f"/{name}")


@hookimpl
def after_write(
    backend: str, method: str, result: Any, req: Request | None, settings: Settings
) -> None:
    if _on(settings):
        _log(
            settings,
            {
                "hook": "after_write",
                "backend": backend,
                "method": method,
                "via": "sync" if req is not None else "emit",
            },
        )


class ExpiringIdentity(str):
    """A user name whose credentials run out at ``expires_at``."""

    expires_at: float
