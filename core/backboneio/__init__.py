"""backboneio: realtime Backbone.js model sync over Socket.IO, with pluggable backends.

import backboneio

messages = backboneio.create_backend()
messages.use(backboneio.stores.memory())
server = backboneio.listen(None, {"messages": messages})
backboneio.run(server, port=3000)
"""

from __future__ import annotations

from . import stores
from .backend import Backend, Request, Response, create_backend
from .errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    ConnectionRefused,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    SyncError,
    SyncTimeout,
    Unauthorized,
    Unavailable,
)
from .hookspecs import hookimpl
from .server import Server, listen, run

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "ConnectionRefused",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "Request",
    "Response",
    "Server",
    "SyncError",
    "SyncTimeout",
    "Unauthorized",
    "Unavailable",
    "create_backend",
    "hookimpl",
    "listen",
    "run",
    "stores",
]
