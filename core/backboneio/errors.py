"""Errors a backend answers with, and how they travel to the client.

A :class:`SyncError` is a *public* error: its name, message and ``details``
are meant for the client. Any other exception is private: the client gets a
generic ``ServerError`` unless DEBUG is on, because exception messages often
carry connection strings, file paths or SQL.
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar


class SyncError(Exception):
    """An error answered to the client as ``{"error": {"name", "message", ...}}``."""

    name: ClassVar[str] = "SyncError"
    status: ClassVar[int] = 400
    default_message: ClassVar[str] = "The request could not be completed"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_public(self) -> dict[str, Any]:
        return {**self.details, "name": self.name, "message": self.message, "status": self.status}


class BadRequest(SyncError):
    name = "BadRequest"
    status = 400
    default_message = "Malformed request"


class Unauthorized(SyncError):
    name = "Unauthorized"
    status = 401
    default_message = "Authentication required"


class Forbidden(SyncError):
    name = "Forbidden"
    status = 403
    default_message = "Not allowed"


class NotFound(SyncError):
    name = "NotFound"
    status = 404
    default_message = "No such model"


class Conflict(SyncError):
    name = "Conflict"
    status = 409
    default_message = "The model conflicts with a stored one"


class IdempotencyKeyReused(SyncError):
    """The write's ``idempotencyKey`` was first used for another method or model."""

    name = "IdempotencyKeyReused"
    status = 422
    default_message = "This idempotencyKey was already used for another write"


class PayloadTooLarge(SyncError):
    name = "PayloadTooLarge"
    status = 413
    default_message = "Message too large"


class Unavailable(SyncError):
    name = "Unavailable"
    status = 503
    default_message = "The store is unavailable; try again later"


class SyncTimeout(SyncError):
    name = "Timeout"
    status = 504
    default_message = "The backend did not answer in time"


class ConnectionRefused(Exception):
    """Raised by an ``authenticate`` hook to refuse a connection; the client sees the reason."""

    def __init__(self, reason: str = "Connection refused", **data: Any) -> None:
        self.reason = reason
        self.data = data
        super().__init__(reason)


class ConfigurationError(Exception):
    """Settings that cannot start a server: names the setting and what is wrong."""


def as_exception(error: Any) -> BaseException:
    """Whatever a middleware passed to ``next()`` or ``res.error()``, as an exception.

    Only :class:`SyncError` is public; a plain string could be a driver's
    message, so it travels as a private error like any other exception.
    """
    if isinstance(error, BaseException):
        return error
    return RuntimeError(str(error))


def public_error(exc: BaseException, *, debug: bool = False) -> dict[str, Any]:
    """The wire form of an error: ``{"error": {...}}``."""
    if isinstance(exc, SyncError):
        body = exc.to_public()
    elif debug:
        body = {"name": type(exc).__name__, "message": str(exc), "status": 500}
    else:
        body = {"name": "ServerError", "message": "Internal server error", "status": 500}
    if debug:
        body["stack"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"error": body}
