"""The wire rules of the Backbone.IO protocol, as plain functions.

Everything a client sends is checked here before the hub acts on it, and
every answer's shape is decided here; nothing in this module knows about
sockets, so each rule is unit-tested on its own (tests/test_wire_rules.py).
docs/protocol.md is the prose version.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from . import jsonutil
from .backend import METHODS
from .changelog import Position
from .errors import BadRequest, SyncError, public_error
from .idempotency import parse_key

log = logging.getLogger("backboneio")

CLIENT_EVENTS = frozenset({"listen", "sync"})
# Names python-socketio triggers itself; a client sending them as events
# would re-run authentication with an environ of its own making.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})
MAX_CHANNEL_LENGTH = 256
MAX_SINCE = 8  # a socket hears at most two streams; a few stale extras are harmless
MAX_EPOCH_LENGTH = 64


@dataclass(frozen=True)
class ListenRequest:
    channel: str | None
    since: tuple[Position, ...] | None = None


@dataclass(frozen=True)
class SyncRequest:
    method: str
    model: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    # options.idempotencyKey, checked; a read's is checked and then ignored.
    idempotency_key: str | None = None


def parse_channel(value: Any) -> str | None:
    if value is not None and (
        not isinstance(value, str) or not value or len(value) > MAX_CHANNEL_LENGTH
    ):
        raise BadRequest(f"A channel is null or a string of 1 to {MAX_CHANNEL_LENGTH} characters")
    return value


def parse_position(value: Any) -> Position:
    """``{"channel", "epoch", "seq"}`` as a client sends it back."""
    if not isinstance(value, dict):
        raise BadRequest("A position is an object {channel, epoch, seq}")
    channel = parse_channel(value.get("channel"))
    epoch, seq = value.get("epoch"), value.get("seq")
    if not isinstance(epoch, str) or not epoch or len(epoch) > MAX_EPOCH_LENGTH:
        raise BadRequest("A position's epoch is the string the server gave")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise BadRequest("A position's seq is an integer of 0 or more")
    return Position(channel, epoch, seq)


def parse_listen(args: tuple[Any, ...]) -> ListenRequest:
    """``listen(channel)`` or ``listen(channel, {"since": [position, ...]})``."""
    if len(args) > 2:
        raise BadRequest("listen takes a channel and, optionally, {since: [positions]}")
    channel = parse_channel(args[0] if args else None)
    options = args[1] if len(args) > 1 else None
    if options is None:
        return ListenRequest(channel)
    if not isinstance(options, dict):
        raise BadRequest("listen's second argument is an object such as {since: [positions]}")
    since = options.get("since")
    if since is None:
        return ListenRequest(channel)
    if not isinstance(since, list) or len(since) > MAX_SINCE:
        raise BadRequest(f"since is a list of at most {MAX_SINCE} positions")
    return ListenRequest(channel, tuple(parse_position(p) for p in since))


def parse_sync(args: tuple[Any, ...], id_attribute: str) -> SyncRequest:
    """``sync({method, model, options})``, checked to be plain JSON a browser can read back."""
    if len(args) != 1 or not isinstance(args[0], dict):
        raise BadRequest("sync takes one request object: {method, model, options}")
    raw = args[0]
    method = raw.get("method")
    if method not in METHODS:
        raise BadRequest(
            f"Unknown method {method!r}; expected one of {', '.join(METHODS)}", method=method
        )
    model = raw.get("model", {})
    if model is None:
        model = {}
    if not isinstance(model, dict):
        raise BadRequest("model must be an object", method=method)
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object", method=method)
    try:
        jsonutil.check_value(model, "model")
        jsonutil.check_value(options, "options")
    except BadRequest as exc:
        exc.details.setdefault("method", method)
        raise
    if method in ("update", "patch", "delete") and model.get(id_attribute) is None:
        raise BadRequest(f"{method} needs the model's {id_attribute}", method=method)
    try:
        key = parse_key(options)
    except BadRequest as exc:
        exc.details.setdefault("method", method)
        raise
    return SyncRequest(method, model, options, key)


def refusal(data: Any) -> BadRequest | None:
    """Why an event's data is not something a backend namespace may run, else None.

    ``data`` is the decoded payload of an EVENT packet: ``[name, *args]``.
    """
    if not isinstance(data, list) or not data:
        return BadRequest("An event is a list: [name, ...arguments]")
    event = data[0]
    if not isinstance(event, str) or event in RESERVED_EVENTS:
        return BadRequest(f"{event!r} is not an event a client may send")
    return None


def unknown_event(event: str) -> BadRequest:
    return BadRequest(f"Unknown event {event!r}; a backend answers 'listen' and 'sync'")


def missing_ack(event: str) -> BadRequest:
    # listen and sync answer through the ack; without one the client could
    # never learn the outcome.
    return BadRequest(f"{event!r} must be sent with an acknowledgement callback")


def error_answer(exc: BaseException, *, backend: str, debug: bool) -> dict[str, Any]:
    """``{"error": {...}}`` for ``exc``; a private error is logged with its traceback."""
    if not isinstance(exc, SyncError):
        log.error("backend %r failed", backend, exc_info=exc)
    return public_error(exc, debug=debug)


def listen_answer(
    event: str,
    channel: str | None,
    positions: list[Position],
    failed: list[Position],
) -> dict[str, Any]:
    return {
        "event": event,
        "channel": channel,
        "positions": [p.as_wire() for p in positions],
        "recovered": not failed,
        "failed": [p.as_wire() for p in failed],
    }


class RateLimitedWarning:
    """One log line per ``interval`` seconds for a kind of bad input, with a count.

    Anyone can send malformed frames; a traceback for each would let one
    client fill the disk of a server that logs to a file.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, kind: str, message: str) -> bool:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("refused malformed input: %s%s", message, more)
        return True
