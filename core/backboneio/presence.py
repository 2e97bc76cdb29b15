"""Presence: who else is on a backend or a channel, kept current for everyone there.

A socket announces itself with a small JSON state (``presence`` in its listen
options, or a ``presence({state})`` request later). Members are keyed on the
identity the ``authenticate`` hook gave the socket, so the tabs of one user are
one member with several connections; an anonymous socket is a member of its
own, keyed on the ``presenceId`` its client chose (else its sid), which is what
lets a page that reconnects come back as the member it was.

When a connection drops, the member keeps it for ``PRESENCE_GRACE`` seconds: a
reconnect within them takes it back without a leave and a join. Then the
connection is dropped, and the member leaves with its last connection.

The wire rules are plain functions (:func:`parse_state`, :func:`member_key`,
:func:`event_args`); :class:`Registry` is what the hub talks to; the members
themselves live in a :class:`PresenceStore`, the extension point for sharing
them between processes (:class:`MemoryPresence` is the in-process one).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import jsonutil, runner
from .errors import BadRequest, PayloadTooLarge
from .idempotency import identity_scope

Scope = tuple[str, "str | None"]  # (backend, channel); a None channel is the whole backend
Ident = tuple[Scope, str, str]  # (scope, member key, connection key)
KINDS = ("join", "update", "leave")
PRESENCE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclass
class Member:
    """One member of a scope: who (``key``), what it says (``state``) and from where."""

    key: str
    state: dict[str, Any]
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)  # conn -> its state

    def as_wire(self) -> dict[str, Any]:
        return {"id": self.key, "state": self.state, "connections": len(self.connections)}


@dataclass(frozen=True)
class Change:
    """What a store call did to a scope's members, for the hub to tell its clients."""

    kind: str  # join, update or leave
    member: dict[str, Any]  # Member.as_wire()


# -- wire rules ----------------------------------------------------------------


def parse_state(value: Any, max_bytes: int) -> dict[str, Any]:
    """A presence state as a client sends it: a JSON object of at most ``max_bytes``."""
    if not isinstance(value, dict):
        raise BadRequest("A presence state is an object, such as {name: 'alice'}")
    try:
        size = len(jsonutil.dumps(value).encode())
    except (TypeError, ValueError):
        raise BadRequest("A presence state must be plain JSON") from None
    if size > max_bytes:
        raise PayloadTooLarge(
            f"A presence state of {size} bytes exceeds PRESENCE_MAX_BYTES ({max_bytes})",
            limit=max_bytes,
        )
    return value


def parse_presence_id(value: Any) -> str | None:
    """The client-chosen id of a connection that outlives its reconnects."""
    if value is None:
        return None
    if not isinstance(value, str) or not PRESENCE_ID.fullmatch(value):
        raise BadRequest("presenceId is 8 to 64 letters, digits, '-' or '_'")
    return value


@dataclass(frozen=True)
class PresenceRequest:
    """``presence({state?, presenceId?})``: ``state`` absent only asks for the members."""

    set_state: bool
    state: dict[str, Any] | None  # None with set_state: leave
    presence_id: str | None


def parse_request(args: tuple[Any, ...], max_bytes: int) -> PresenceRequest:
    if len(args) > 1 or (args and args[0] is not None and not isinstance(args[0], dict)):
        raise BadRequest("presence takes one object: {state, presenceId}, or nothing")
    options = args[0] if args and args[0] is not None else {}
    presence_id = parse_presence_id(options.get("presenceId"))
    if "state" not in options:
        return PresenceRequest(False, None, presence_id)
    state = options["state"]
    return PresenceRequest(
        True, None if state is None else parse_state(state, max_bytes), presence_id
    )


@dataclass(frozen=True)
class Announcement:
    """``presence`` (and ``presenceId``) in a listen's options."""

    state: dict[str, Any]
    presence_id: str | None


def parse_listen_options(args: tuple[Any, ...], max_bytes: int) -> Announcement | None:
    """The presence a ``listen(channel, {presence, presenceId})`` announces, if any."""
    options = args[1] if len(args) > 1 else None
    if not isinstance(options, dict) or options.get("presence") is None:
        return None  # protocol.parse_listen has refused any other shape
    return Announcement(
        parse_state(options["presence"], max_bytes), parse_presence_id(options.get("presenceId"))
    )


def member_key(identity: Any, presence_id: str | None, sid: str) -> str:
    """What a member is keyed on, and the ``id`` every client of its scope sees.

    An identity with a subject or an id is shown as it (``subject:"alice"``),
    so a page can match members to its users; any other identity, and an
    anonymous connection, only as a digest: a whole identity may hold claims,
    and a ``presenceId`` seen by others would let them speak for that page.
    """
    if identity is not None:
        scope = identity_scope(identity)
        if scope.startswith(("subject:", "id:")):
            return scope
        return "user:" + _digest(scope)
    return "anonymous:" + _digest(presence_id or "sid:" + sid)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def connection_key(presence_id: str | None, sid: str) -> str:
    return f"id:{presence_id}" if presence_id else f"sid:{sid}"


def event_args(change: Change, channel: str | None) -> tuple[Any, ...]:
    """The arguments of the ``presence`` event a client hears."""
    return (change.kind, change.member, {"channel": channel})


def members_answer(
    channel: str | None, members: list[dict[str, Any]], me: str | None
) -> dict[str, Any]:
    """The members part of a listen or presence ack."""
    return {"channel": channel, "self": me, "members": members}


# -- the store -------------------------------------------------------------------


class PresenceStore(Protocol):
    """Where a scope's members are kept: the extension point for a cluster.

    Each call returns what it changed (or None), and the registry tells its
    own clients; a store shared between processes (Redis) would also publish
    its changes, and call the function given to :meth:`start` for those made
    elsewhere, so each process tells the clients it holds. Timing (the grace
    period) is the registry's: a store only adds and removes connections.
    A store may also have a ``close()``, which :meth:`Registry.close` calls
    when the server stops.
    """

    def start(self, deliver: Callable[[Scope, Change], None]) -> None:
        """Begin; ``deliver`` takes changes made by other processes."""

    def put(self, scope: Scope, key: str, conn: str, state: dict[str, Any]) -> Change | None:
        """Connection ``conn`` of member ``key`` says ``state``: a join or an update."""

    def remove(self, scope: Scope, key: str, conn: str) -> Change | None:
        """Connection ``conn`` is gone: a leave when it was the member's last."""

    def members(self, scope: Scope) -> list[dict[str, Any]]:
        """The scope's members, as the wire has them, oldest first."""


class MemoryPresence:
    """The members of this process's scopes, in a dict (one process only)."""

    def __init__(self) -> None:
        self.scopes: dict[Scope, dict[str, Member]] = {}

    def start(self, deliver: Callable[[Scope, Change], None]) -> None:
        pass  # no other process changes these

    def put(self, scope: Scope, key: str, conn: str, state: dict[str, Any]) -> Change | None:
        members = self.scopes.setdefault(scope, {})
        member = members.get(key)
        if member is None:
            member = members[key] = Member(key, state, {conn: state})
            return Change("join", member.as_wire())
        before = (member.state, len(member.connections))
        member.connections[conn] = state
        member.state = state  # the member says what its latest word was
        if (member.state, len(member.connections)) == before:
            return None  # a reconnect within the grace period: nothing to tell
        return Change("update", member.as_wire())

    def remove(self, scope: Scope, key: str, conn: str) -> Change | None:
        members = self.scopes.get(scope, {})
        member = members.get(key)
        if member is None or member.connections.pop(conn, None) is None:
            return None
        if not member.connections:
            del members[key]
            if not members:
                del self.scopes[scope]
            return Change("leave", member.as_wire())
        # Another tab's state is now the latest one still there.
        member.state = list(member.connections.values())[-1]
        return Change("update", member.as_wire())

    def members(self, scope: Scope) -> list[dict[str, Any]]:
        return [member.as_wire() for member in self.scopes.get(scope, {}).values()]


# -- the registry ------------------------------------------------------------------


@dataclass
class Seat:
    """Where one socket is present: the hub keeps one per announcing socket."""

    scope: Scope
    key: str
    conn: str
    state: dict[str, Any]

    @property
    def ident(self) -> Ident:
        return (self.scope, self.key, self.conn)


class Registry:
    """The hub's presence: seats of sockets, the grace period, and who to tell.

    ``tell(scope, change)`` sends a change to the clients of ``scope`` that
    this process holds.
    """

    def __init__(
        self,
        store: PresenceStore,
        tell: Callable[[Scope, Change], None],
        grace: float,
        call_later: Callable[..., Any] = runner.call_later,
    ) -> None:
        self.store = store
        self.tell = tell
        self.grace = grace
        self.call_later = call_later  # (seconds, fn, *args) -> a timer with .cancel()
        self.seats: dict[tuple[str, str], Seat] = {}  # (backend, sid) -> seat
        # The sockets holding each connection: a reconnected socket may
        # announce itself before the server notices the old one is gone.
        self.holders: dict[Ident, set[tuple[str, str]]] = {}
        # Connections of dropped sockets, waiting out the grace period.
        self.leaving: dict[Ident, Any] = {}
        store.start(tell)

    def seat(self, backend: str, sid: str) -> Seat | None:
        return self.seats.get((backend, sid))

    def announce(
        self,
        backend: str,
        sid: str,
        channel: str | None,
        key: str,
        conn: str,
        state: dict[str, Any],
    ) -> None:
        """The socket ``sid`` is present on ``channel`` saying ``state``."""
        scope: Scope = (backend, channel)
        ident: Ident = (scope, key, conn)
        old = self.seats.get((backend, sid))
        if old is not None and old.ident != ident:
            self.withdraw(backend, sid)
        pending = self.leaving.pop(ident, None)
        if pending is not None:
            pending.cancel()  # back within the grace period
        self.seats[(backend, sid)] = Seat(scope, key, conn, state)
        self.holders.setdefault(ident, set()).add((backend, sid))
        self._apply(scope, self.store.put(scope, key, conn, state))

    def withdraw(self, backend: str, sid: str) -> None:
        """The socket leaves presence now (it said so, or moved to another channel)."""
        seat = self._unseat(backend, sid)
        if seat is not None and seat.ident not in self.holders:
            self._remove(seat.ident)

    def dropped(self, backend: str, sid: str) -> None:
        """The socket disconnected: its connection leaves after the grace period."""
        seat = self._unseat(backend, sid)
        if seat is None or seat.ident in self.holders:
            return  # not present, or the reconnected socket already holds it
        if self.grace <= 0:
            self._remove(seat.ident)
        elif seat.ident not in self.leaving:
            self.leaving[seat.ident] = self.call_later(self.grace, self._expire, seat.ident)

    def members(self, scope: Scope) -> list[dict[str, Any]]:
        return self.store.members(scope)

    def use(self, store: PresenceStore) -> None:
        """Keep members in ``store`` (a plugin's, shared between processes); before serving."""
        self.store = store
        store.start(self.tell)

    # -- what the hub calls --------------------------------------------------

    def listened(self, client: Any, announced: Announcement | None, answer: dict[str, Any]) -> None:
        """After a listen: announce, or leave a channel the socket moved away from.

        ``client`` is the hub's Client; a listen with ``presence`` gets the
        members in its answer (``answer["presence"]``).
        """
        backend, sid, channel = client.backend, client.sid, client.channel
        if announced is None:
            seat = self.seat(backend, sid)
            if seat is not None and seat.scope != (backend, channel):
                self.withdraw(backend, sid)
            return
        key = member_key(client.identity, announced.presence_id, sid)
        conn = connection_key(announced.presence_id, sid)
        self.announce(backend, sid, channel, key, conn, announced.state)
        answer["presence"] = members_answer(channel, self.members((backend, channel)), key)

    def request(self, client: Any, args: tuple[Any, ...], max_bytes: int) -> dict[str, Any]:
        """``presence({state, presenceId})``: set (or, with null, end) this socket's
        presence on its channel; with no state, only ask. Answers the members."""
        backend, sid, channel = client.backend, client.sid, client.channel
        req = parse_request(args, max_bytes)
        if req.set_state and req.state is None:
            self.withdraw(backend, sid)
        elif req.set_state and req.state is not None:
            key = member_key(client.identity, req.presence_id, sid)
            conn = connection_key(req.presence_id, sid)
            self.announce(backend, sid, channel, key, conn, req.state)
        seat = self.seat(backend, sid)
        me = seat.key if seat is not None else None
        return members_answer(channel, self.members((backend, channel)), me)

    def _unseat(self, backend: str, sid: str) -> Seat | None:
        seat = self.seats.pop((backend, sid), None)
        if seat is not None:
            holders = self.holders.get(seat.ident, set())
            holders.discard((backend, sid))
            if not holders:
                self.holders.pop(seat.ident, None)
        return seat

    def _expire(self, ident: Ident) -> None:
        if self.leaving.pop(ident, None) is not None and ident not in self.holders:
            self._remove(ident)

    def _remove(self, ident: Ident) -> None:
        scope, key, conn = ident
        self._apply(scope, self.store.remove(scope, key, conn))

    def _apply(self, scope: Scope, change: Change | None) -> None:
        if change is not None:
            self.tell(scope, change)

    def close(self) -> None:
        for timer in self.leaving.values():
            timer.cancel()
        self.leaving.clear()
        # A shared store has a reader and a heartbeat to stop (close() is
        # optional: MemoryPresence has nothing to end).
        close = getattr(self.store, "close", None)
        if callable(close):
            close()
