"""backboneio: realtime Backbone.js model sync over Socket.IO, with pluggable backends.

import backboneio

messages = backboneio.create_backend()
messages.use(backboneio.stores.memory())
server = backboneio.listen(None, {"messages": messages})
backboneio.run(server, port=3000)
"""

from __future__ import annotations

from . import stores
from .app import build_hub, listen, run
from .backend import Backend, Request, Response, create_backend
from .changelog import ChangeLog, Entry, Position
from .errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    ConnectionRefused,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    SyncError,
    SyncTimeout,
    Unauthorized,
    Unavailable,
)
from .hookspecs import hookimpl
from .hub import Emitter, Hub
from .socketio_adapter import Server

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BadRequest",
    "ChangeLog",
    "ConfigurationError",
    "Conflict",
    "ConnectionRefused",
    "Emitter",
    "Entry",
    "Forbidden",
    "Hub",
    "IdempotencyKeyReused",
    "NotFound",
    "PayloadTooLarge",
    "Position",
    "Request",
    "Response",
    "Server",
    "SyncError",
    "SyncTimeout",
    "Unauthorized",
    "Unavailable",
    "build_hub",
    "create_backend",
    "hookimpl",
    "listen",
    "run",
    "stores",
]
