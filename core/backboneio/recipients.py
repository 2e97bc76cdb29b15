"""Per-recipient filtering of ``synced`` notifications, in every server process.

When a plugin implements ``authorize_broadcast``, the client manager's class
is extended with :class:`RecipientFilter`. python-socketio delivers every
emit to the local sockets through ``Manager.emit``, both for the in-process
manager and, on each process, for pub/sub managers such as ``RedisManager``
(whose ``_handle_emit`` calls ``super().emit``). Placing the filter just above
``Manager`` in the class hierarchy therefore lets each process decide for the
sockets it holds, which is the only place their identities are known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio

# namespace -> check(sid, method, model, channel) -> may this socket hear it?
RecipientCheck = Callable[[str, str, Any, "str | None"], bool]


class RecipientFilter(socketio.Manager):
    """Adds the sockets a namespace's check refuses to ``skip_sid`` of ``synced``."""

    recipient_checks: dict[str, RecipientCheck]

    def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> Any:
        room = to or room
        check = self.recipient_checks.get(namespace) if event == "synced" else None
        if check is not None and isinstance(data, (tuple, list)) and len(data) >= 2:
            method, model = data[0], data[1]
            skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
            skipped = skipped + [
                sid
                for sid, _eio_sid in self.get_participants(namespace, room)
                if sid not in skipped and not check(sid, method, model, room)
            ]
            skip_sid = skipped
        return super().emit(
            event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
        )


def with_recipient_filter(manager: socketio.Manager | None) -> socketio.Manager:
    """``manager`` (or a new in-process one) with :class:`RecipientFilter` in its hierarchy."""
    manager = manager if manager is not None else socketio.Manager()
    cls = type(manager)
    if cls is socketio.Manager:
        manager.__class__ = RecipientFilter
    elif not issubclass(cls, RecipientFilter):
        # (cls, RecipientFilter) puts the filter right above socketio.Manager in
        # the MRO, below any pub/sub layer, where local delivery happens.
        manager.__class__ = type(f"Filtering{cls.__name__}", (cls, RecipientFilter), {})
    manager.recipient_checks = {}
    return manager
