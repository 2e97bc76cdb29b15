"""The hub: the running server, and the one request pipeline every client goes through.

A socket's life on a backend, in order: :meth:`Hub.connect` (authenticate),
:meth:`Hub.listen` (authorize, pick a channel, replay what it missed),
:meth:`Hub.sync` (authorize, run the backend's middleware and store, record
the write), :meth:`Hub.disconnect`. Every write, whether a client's sync, a
``backend.emit()`` or an :class:`backboneio.Emitter` in another program,
enters the change log through :meth:`Hub.record`, and every notification
leaves from :meth:`Hub.deliver`, which the log calls once per entry.

The hub knows nothing about Socket.IO: it talks to clients through a
:class:`Transport`, which the Socket.IO adapter provides.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pluggy

from . import idempotency, live, presence, protocol, runner
from .backend import WRITE_METHODS, Backend, Request
from .changelog import ChangeLog, Entry, MemoryChangeLog, Position, Retention, StreamKey
from .errors import (
    BadRequest,
    ConfigurationError,
    ConnectionRefused,
    Forbidden,
    SyncTimeout,
    Unauthorized,
    Unavailable,
)
from .query import Query
from .requestlog import synced as log_sync
from .settings import Settings

log = logging.getLogger("backboneio")

FAR_FUTURE = 1e11  # seconds since the epoch: the year 5138
LOGIN_REQUIRED_PLUGIN = "backboneio.default_plugins.login_required"
APPEND_RETRY_SECONDS = 0.25


def expires_at(identity: Any) -> float | None:
    """When an identity stops being valid (seconds since the epoch), if it says.

    An ``authenticate`` hook may return an identity with an ``expires_at``
    attribute (a signed token's ``exp``); the socket is disconnected then, so
    an expired credential neither writes nor hears notifications.
    """
    value = getattr(identity, "expires_at", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # Beyond any real deadline (and beyond what float() or a timer accepts).
    return float(value) if value < FAR_FUTURE else None


class Transport(Protocol):
    """How the hub reaches sockets; the Socket.IO adapter implements it."""

    def send(
        self,
        backend: str,
        data: tuple[Any, ...],
        *,
        to: list[str] | None = None,
        channel: str | None = None,
        skip: str | None = None,
        local: bool = True,
    ) -> None:
        """Emit ``synced(*data)`` to the sids ``to``, or else to every socket of
        ``channel`` (None: of the backend) but ``skip``. ``local`` False lets a
        pub/sub client manager carry it to the other processes too."""

    def join(self, backend: str, sid: str, channel: str | None, old: str | None) -> None:
        """Move ``sid`` from channel ``old`` to ``channel``."""

    def disconnect(self, backend: str, sid: str) -> None:
        """Close the socket's connection to the backend."""

    def send_presence(self, backend: str, data: tuple[Any, ...], *, to: list[str]) -> None:
        """Emit ``presence(*data)`` to the sids ``to`` (presence.py)."""

    def send_query(self, backend: str, data: tuple[Any, ...], to: str) -> None:
        """Emit ``query(*data)`` to the sid ``to`` (live.py)."""


class NoTransport:
    """An :class:`Emitter`'s hub serves nobody."""

    def send(self, backend: str, data: tuple[Any, ...], **kwargs: Any) -> None:
        pass

    def join(self, backend: str, sid: str, channel: str | None, old: str | None) -> None:
        pass

    def disconnect(self, backend: str, sid: str) -> None:
        pass

    def send_presence(self, backend: str, data: tuple[Any, ...], *, to: list[str]) -> None:
        pass

    def send_query(self, backend: str, data: tuple[Any, ...], to: str) -> None:
        pass


@dataclass
class Client:
    """What the hub remembers about one socket on one backend."""

    sid: str
    backend: str
    identity: Any = None
    environ: dict[str, Any] = field(default_factory=dict)
    channel: str | None = None
    session: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    expiry: Any = None  # the timer that disconnects it when its identity expires
    # While a listen replays history, live entries of its streams wait here.
    replaying: dict[StreamKey, list[Entry]] | None = None
    # Entries at or below these were replayed; a shared log may still bring
    # them live, a little later.
    replayed: dict[StreamKey, Position] = field(default_factory=dict)

    @property
    def careful(self) -> bool:
        return self.replaying is not None or bool(self.replayed)


@dataclass
class BackendState:
    """One served backend: its stack, its clients and what was resolved once for it."""

    name: str
    backend: Backend
    config: dict[str, Any]
    event: str = "backend"
    retention: Retention = field(default_factory=Retention)
    authorize: bool = True  # whether any authorize hook can answer for it
    clients: dict[str, Client] = field(default_factory=dict)
    channels: dict[str, dict[str, Client]] = field(default_factory=dict)
    careful: set[str] = field(default_factory=set)  # sids replaying or just replayed


class Hub:
    """The running server: settings, plugins, backends, the change log and the clients."""

    def __init__(self, settings: Settings, plugins: pluggy.PluginManager) -> None:
        self.settings = settings
        self.plugins = plugins
        self.hook = plugins.hook
        self.state: dict[str, Any] = {}  # plugins keep what they built for this server here
        self.backends: dict[str, Backend] = {}
        self.served: dict[str, BackendState] = {}
        self.log: ChangeLog = MemoryChangeLog()
        self.log_shared = False
        self.transport: Transport = NoTransport()
        self.heads: dict[StreamKey, Position] = {}
        self.filtering = False
        self.manager_fans_out = False
        self.started = False
        self.draining = False  # shutting down: ready no more, waiting for requests in progress
        self.in_flight = 0  # syncs being handled now
        self._pending: deque[tuple[Any, ...]] = deque()  # writes the log could not take yet
        # Write keys unique across processes without a uuid per write (see record).
        self._key_prefix = uuid.uuid4().hex[:16] + "-"
        self._write_count = itertools.count(1)
        self._retrying = False
        # Answers to writes with an idempotencyKey, newest first out (idempotency.py).
        self.keys = idempotency.KeyTable(int(settings.IDEMPOTENCY_MAX_KEYS))
        # Who is here (presence.py); a plugin may swap its store for a shared one.
        self.presence = presence.Registry(
            presence.MemoryPresence(), self.tell_presence, float(settings.PRESENCE_GRACE)
        )
        # Live queries' windows (live.py), kept current in deliver.
        self.live = live.LiveQueries(self._send_query)

    def __repr__(self) -> str:
        return f"<Hub serving {', '.join(self.backends) or 'no backends'}>"

    # -- building -----------------------------------------------------------

    def add_backend(
        self, name: str, backend: Backend, config: dict[str, Any] | None = None
    ) -> None:
        if name in self.backends:
            raise ConfigurationError(f"Backend {name!r} is defined twice")
        if not backend.name:
            backend.name = name
        self.backends[name] = backend
        self.served[name] = BackendState(name, backend, dict(config or {}))
        backend.add_notifier(functools.partial(self.emitted, name))

    def prepare(self) -> None:
        """Resolve, once, what every request would otherwise ask the plugins again."""
        settings = self.settings
        for name, state in self.served.items():
            state.event = (
                self.hook.event_name(backend=name, settings=settings, hub=self) or settings.EVENT
            )
            state.retention = Retention(
                max_age=float(state.config.get("change_log_max_age", settings.CHANGE_LOG_MAX_AGE)),
                max_entries=int(
                    state.config.get("change_log_max_entries", settings.CHANGE_LOG_MAX_ENTRIES)
                ),
            )
        change_log = self.hook.change_log(settings=settings, hub=self)
        if change_log is not None:
            self.log = change_log
        else:
            self.log = MemoryChangeLog(
                Retention(float(settings.CHANGE_LOG_MAX_AGE), int(settings.CHANGE_LOG_MAX_ENTRIES))
            )
        self.log_shared = bool(getattr(self.log, "shared", False))

    def start(self, transport: Transport) -> None:
        """Begin serving: called by the adapter once the server is set up."""
        self.transport = transport
        # Plugins may register more plugins in configure_server, so the hooks
        # are looked at only now.
        self.filtering = bool(self.hook.authorize_broadcast.get_hookimpls())
        # Each process delivers a shared log's entries itself; without one, a
        # pub/sub client manager carries notifications between processes.
        self.manager_fans_out = bool(getattr(transport, "pubsub", False)) and not self.log_shared
        impls = self.hook.authorize.get_hookimpls()
        others = any(impl.plugin_name != LOGIN_REQUIRED_PLUGIN for impl in impls)
        for state in self.served.values():
            # The default login_required plugin answers only for backends
            # that set it; skipping the call saves a pluggy round per sync.
            state.authorize = others or bool(state.config.get("login_required"))
        self.log.start(self.deliver)
        self.started = True

    def close(self) -> None:
        self.presence.close()
        self.log.close()

    def drain(self, timeout: float) -> int:
        """Stop being ready and wait up to ``timeout`` seconds for the syncs in
        progress; returns how many were still running."""
        self.draining = True
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            runner.sleep(0.02)
        return self.in_flight

    def health(self) -> dict[str, Any]:
        """What ``/readyz`` reports: ready unless draining or the change log is down."""
        available = self.log_available()
        return {
            "ready": self.started and not self.draining and available,
            "draining": self.draining,
            "backends": {name: len(state.clients) for name, state in self.served.items()},
            "change_log": {
                "shared": self.log_shared,
                "available": available,
                "pending": len(self._pending),
            },
        }

    def memo(self, key: str, build: Callable[[], Any], *, fresh: bool = False) -> Any:
        """A value a plugin builds once for this server and keeps in :attr:`state`."""
        if fresh or key not in self.state:
            self.state[key] = build()
        return self.state[key]

    # -- connection ---------------------------------------------------------

    def connect(self, backend: str, sid: str, environ: dict[str, Any], auth: Any) -> Client:
        """Authenticate a new socket; raises :class:`ConnectionRefused` to refuse it."""
        state = self.served[backend]
        if self.draining:
            raise ConnectionRefused("The server is shutting down; connect to another one")
        try:
            identity = self.hook.authenticate(
                environ=environ, auth=auth, backend=backend, settings=self.settings, hub=self
            )
        except ConnectionRefused:
            raise
        except Exception as exc:
            log.exception("authenticate hook failed for backend %r", backend)
            detail = f": {exc}" if self.settings.DEBUG else ""
            raise ConnectionRefused(f"Authentication failed{detail}") from exc
        deadline = expires_at(identity)
        client = Client(sid, backend, identity=identity, environ=environ, deadline=deadline)
        if deadline is not None:
            if deadline <= time.time():
                raise ConnectionRefused("Credentials expired")
            client.expiry = runner.call_later(deadline - time.time(), self.expire, client)
        state.clients[sid] = client
        return client

    def expire(self, client: Client) -> None:
        state = self.served[client.backend]
        if state.clients.get(client.sid) is client:
            log.info("disconnecting %s from %r: its credentials expired", client.sid, state.name)
            self.transport.disconnect(client.backend, client.sid)

    def refresh(self, backend: str, sid: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``refresh(auth)``: new credentials for an open socket; the ack's arguments.

        The ``authenticate`` hook checks ``auth`` as it did the connect's. When
        it accepts, the socket's identity and expiry are replaced, so a page can
        outlive its first token without reconnecting. When it refuses, nothing
        changes: the socket still closes when its old credentials expire.
        """
        try:
            client = self.client(backend, sid)
            auth = args[0] if args else None
            if not isinstance(auth, dict):
                raise BadRequest("refresh takes the new credentials as an object, like auth")
            identity = self._reauthenticate(client, auth)
            deadline = expires_at(identity)
            if deadline is not None and deadline <= time.time():
                raise Unauthorized("Credentials expired")
            # Whatever the socket listens on must still be allowed to the new identity.
            self.authorize("listen", replace(client, identity=identity), client.channel, None)
        except Exception as exc:
            return self.error_answer(exc, backend), None
        if client.expiry is not None:
            client.expiry.cancel()
        client.identity, client.deadline, client.expiry = identity, deadline, None
        if deadline is not None:
            client.expiry = runner.call_later(deadline - time.time(), self.expire, client)
        return None, {"expires_at": deadline}

    def _reauthenticate(self, client: Client, auth: dict[str, Any]) -> Any:
        try:
            identity = self.hook.authenticate(
                environ=client.environ,
                auth=auth,
                backend=client.backend,
                settings=self.settings,
                hub=self,
            )
        except ConnectionRefused as exc:
            raise Unauthorized(exc.reason, **exc.data) from exc
        except Exception as exc:
            log.exception("authenticate hook failed on refresh for backend %r", client.backend)
            detail = f": {exc}" if self.settings.DEBUG else ""
            raise Unauthorized(f"Authentication failed{detail}") from exc
        if identity is None:
            # No plugin recognised them: an identity is never swapped for anonymity.
            raise Unauthorized("The new credentials were not recognised")
        return identity

    def disconnect(self, backend: str, sid: str) -> None:
        state = self.served[backend]
        client = state.clients.pop(sid, None)
        if client is None:
            return
        if client.channel is not None:
            self._leave(state, client)
        state.careful.discard(sid)
        self.presence.dropped(backend, sid)
        self.live.dropped(backend, sid)
        if client.expiry is not None:
            client.expiry.cancel()

    def presence_request(self, backend: str, sid: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``presence({state, presenceId})``: the ack's arguments (presence.py)."""
        try:
            client = self.client(backend, sid)
            answer = self.presence.request(client, args, self.settings.PRESENCE_MAX_BYTES)
        except Exception as exc:
            return self.error_answer(exc, backend), None
        return None, answer

    def tell_presence(self, scope: presence.Scope, change: presence.Change) -> None:
        """A presence change, to the sockets of its backend (no channel) or channel."""
        backend, channel = scope
        state = self.served.get(backend)
        if state is None:
            return
        if channel is None:
            to = [sid for sid, client in state.clients.items() if client.channel is None]
        else:
            to = list(state.channels.get(channel, ()))
        if to:
            self.transport.send_presence(backend, presence.event_args(change, channel), to=to)

    def client(self, backend: str, sid: str) -> Client:
        try:
            return self.served[backend].clients[sid]
        except KeyError:  # disconnected while the message was on its way
            raise BadRequest("Not connected to this backend") from None

    def streams(self, client: Client) -> list[StreamKey]:
        """What a socket hears: its backend's writes without a channel, and its channel's."""
        streams: list[StreamKey] = [(client.backend, None)]
        if client.channel is not None:
            streams.append((client.backend, client.channel))
        return streams

    def head(self, stream: StreamKey) -> Position:
        # What this process has delivered: everything after it still comes live.
        position = self.heads.get(stream)
        return position if position is not None else self.log.head(*stream)

    # -- authorization ------------------------------------------------------

    def authorize(
        self, action: str, client: Client, channel: str | None, req: Request | None
    ) -> None:
        state = self.served[client.backend]
        if not state.authorize:
            return
        answers = self.hook.authorize(
            action=action,
            identity=client.identity,
            backend=client.backend,
            channel=channel,
            req=req,
            settings=self.settings,
            hub=self,
        )
        if any(answer is False for answer in answers):
            raise Forbidden(f"Not allowed to {action} on {client.backend!r}")

    def may_hear(self, client: Client, entry: Entry) -> bool:
        """The per-recipient rules, for live delivery and replay alike."""
        if client.deadline is not None and client.deadline <= time.time():
            return False
        identity = client.identity
        return self.may_see(identity, entry.method, entry.model, entry.backend, entry.channel)

    def may_see(
        self, identity: Any, method: str, model: Any, backend: str, channel: str | None
    ) -> bool:
        """What ``authorize_broadcast`` answers for one identity and one model."""
        if not self.filtering:
            return True
        try:
            answers = self.hook.authorize_broadcast(
                identity=identity,
                method=method,
                model=model,
                backend=backend,
                channel=channel,
                hub=self,
            )
        except Exception:
            log.exception("authorize_broadcast hook failed; not notifying that client")
            return False
        return not any(answer is False for answer in answers)

    def recipient_check(
        self, backend: str, sid: str, method: str, model: Any, channel: Any
    ) -> bool:
        """The per-recipient rules for a notification carried by a pub/sub client
        manager (a cluster without a shared change log; see recipients.py)."""
        client = self.served[backend].clients.get(sid)
        entry = Entry(backend, channel, "", 0, method, model)
        return client is not None and self.may_hear(client, entry)

    # -- listen -------------------------------------------------------------

    def listen(self, backend: str, sid: str, args: tuple[Any, ...]) -> dict[str, Any]:
        """``listen(channel[, {since}])``: the answer, an error answer included."""
        state = self.served[backend]
        try:
            client = self.client(backend, sid)
            request = protocol.parse_listen(args)
            announced = presence.parse_listen_options(args, self.settings.PRESENCE_MAX_BYTES)
            self.authorize("listen", client, request.channel, None)
        except Exception as exc:
            return self.error_answer(exc, backend)
        if request.channel != client.channel:
            old = client.channel
            if old is not None:
                self._leave(state, client)
            client.channel = request.channel
            if request.channel is not None:
                state.channels.setdefault(request.channel, {})[sid] = client
            self.transport.join(backend, sid, request.channel, old)
        streams = self.streams(client)
        try:
            failed = self._replay(state, client, streams, request.since) if request.since else []
            positions = [self.head(stream) for stream in streams]
        except Exception as exc:  # a shared log that is unreachable: Unavailable
            return self.error_answer(exc, backend)
        answer = protocol.listen_answer(state.event, client.channel, positions, failed)
        self.presence.listened(client, announced, answer)
        return answer

    def _leave(self, state: BackendState, client: Client) -> None:
        members = state.channels.get(client.channel or "")
        if members is not None:
            members.pop(client.sid, None)
            if not members:
                del state.channels[client.channel or ""]

    def _replay(
        self,
        state: BackendState,
        client: Client,
        streams: list[StreamKey],
        since: Iterable[Position],
    ) -> list[Position]:
        """Send what ``client`` missed of each stream; the positions that could not be."""
        wanted = {p.channel: p for p in since}
        failed = [p for p in since if (state.name, p.channel) not in streams]
        client.replaying = {stream: [] for stream in streams}
        state.careful.add(client.sid)
        try:
            for stream in streams:
                position = wanted.get(stream[1])
                if position is None:
                    continue
                entries = self.log.since(state.name, stream[1], position.epoch, position.seq)
                if entries is None:
                    failed.append(position)
                    continue
                for entry in entries:
                    if self.may_hear(client, entry):
                        self._send(state.name, entry, [client.sid])
                last = entries[-1].position if entries else position
                client.replayed[stream] = last
        finally:
            buffered, client.replaying = client.replaying, None
            for entries in buffered.values():
                for entry in entries:
                    if self._fresh_for(client, entry) and self.may_hear(client, entry):
                        self._send(state.name, entry, [client.sid])
            if not client.careful:
                state.careful.discard(client.sid)
        return failed

    def _fresh_for(self, client: Client, entry: Entry) -> bool:
        """False for an entry this client already got in its replay."""
        replayed = client.replayed.get(entry.stream)
        if replayed is None:
            return True
        if replayed.epoch == entry.epoch and entry.seq <= replayed.seq:
            return False
        del client.replayed[entry.stream]  # the live path has caught up with the replay
        if not client.careful:
            self.served[client.backend].careful.discard(client.sid)
        return True

    # -- live queries -------------------------------------------------------

    def subscribe(self, backend: str, sid: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``subscribe({id, query})``: the ack's arguments, the window first (live.py)."""
        state = self.served[backend]
        try:
            client = self.client(backend, sid)
            sub = live.parse_subscribe(args)
            if self.live.subscribed(backend, sid, sub.id):
                raise BadRequest(f"This socket already has a subscription {sub.id!r}", id=sub.id)
            most = int(self.settings.LIVE_QUERIES_PER_CLIENT)
            if self.live.count(backend, sid) >= most:
                raise BadRequest(
                    f"A socket may hold {most} live queries (LIVE_QUERIES_PER_CLIENT); "
                    "unsubscribe one first",
                    limit=most,
                )
            query = Query.parse(sub.data, id_attribute=state.backend.id_attribute)
            req = self._live_read(state, client, sub)
            self.authorize("read", client, client.channel, req)
            # Before the window goes live: it may ask the log, and nothing may
            # come between the window going live and its ack.
            head = self.head((backend, None))
            window = self._window(state, client, sub, query, req)
        except Exception as exc:
            return self.error_answer(exc, backend), None
        self.live.join(backend, sid, sub.id, window)
        if state.clients.get(sid) is not client:  # gone while the store was read
            self.live.dropped(backend, sid)
        head = self.heads.get((backend, None), head)
        if window.position is None:
            window.position = head.as_wire()
        positions = [p.as_wire() for (b, _), p in self.heads.items() if b == backend]
        if not positions:
            positions = [head.as_wire()]
        answer = {"id": sub.id, "models": window.shown(), "epoch": head.epoch, "seq": head.seq}
        return None, {**answer, "positions": positions}

    def unsubscribe(self, backend: str, sid: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``unsubscribe(id)``: ``{id}``, also for an id that was not subscribed."""
        try:
            self.client(backend, sid)
            sub_id = live.parse_unsubscribe(args)
        except Exception as exc:
            return self.error_answer(exc, backend), None
        self.live.leave(backend, sid, sub_id)
        return None, {"id": sub_id}

    def _live_read(self, state: BackendState, client: Client, sub: live.Subscription) -> Request:
        most = int(self.settings.LIVE_QUERY_MAX_MODELS)
        return Request(
            method="read",
            model={},
            options={"data": live.where_only(sub.data, most), "live": True},
            backend=state.name,
            channel=client.channel,
            sid=client.sid,
            environ=client.environ,
            identity=client.identity,
            session=client.session,
            id_attribute=state.backend.id_attribute,
        )

    def _window(
        self,
        state: BackendState,
        client: Client,
        sub: live.Subscription,
        query: Query,
        req: Request,
    ) -> live.Window:
        """The window ``sub`` shares with identical queries, read now if there is none."""
        scope = idempotency.identity_scope(client.identity)
        key: live.Key = (state.name, client.channel, scope, live.canonical(sub.data))
        while (window := self.live.find(key)) is not None:
            if window.loading is None:
                return window
            # Another socket is reading it: its answer is this one's too.
            if not window.ready.wait(float(self.settings.SYNC_TIMEOUT) + 1.0):
                raise SyncTimeout("The live query's first read did not finish; retry")
        window = self.live.open(key, query, client.identity)
        window.source = functools.partial(self._live_models, state, req, query, client.identity)
        try:
            models = window.source()
        except BaseException:
            self.live.abandon(window)
            raise
        self.live.filled(window, models, self._live_visible)
        return window

    def _live_models(
        self, state: BackendState, req: Request, query: Query, identity: Any
    ) -> list[Any]:
        """A live query's matching set, read through the backend's stack."""
        models = state.backend.handle(req, timeout=self.settings.SYNC_TIMEOUT)
        most = int(self.settings.LIVE_QUERY_MAX_MODELS)
        if not isinstance(models, list):
            raise TypeError(f"A store answered a live query's read with {type(models)}")
        if len(models) > most:
            raise BadRequest(
                f"The query matches more than {most} models, more than a live query may "
                "hold (LIVE_QUERY_MAX_MODELS); narrow it",
                limit=most,
            )
        return [
            m
            for m in models
            if isinstance(m, dict)
            and m.get(query.id_attribute) is not None
            and query.matches(m)
            and self.may_see(identity, "read", m, state.name, None)
        ]

    def _live_visible(self, entry: Entry, model: Any, identity: Any) -> bool:
        return self.may_see(identity, entry.method, model, entry.backend, entry.channel)

    def _send_query(self, backend: str, data: tuple[Any, ...], sid: str) -> None:
        self.transport.send_query(backend, data, sid)

    # -- sync ---------------------------------------------------------------

    def sync(self, backend: str, sid: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``sync({method, model, options})``: the ack's arguments."""
        state = self.served[backend]
        started = time.perf_counter()
        self.in_flight += 1
        try:
            answer = self._sync(state, backend, sid, args)
        finally:
            self.in_flight -= 1
        log_sync(backend, sid, args, answer, started, state.backend.id_attribute)  # requestlog.py
        return answer

    def _sync(
        self, state: BackendState, backend: str, sid: str, args: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        try:
            client = self.client(backend, sid)
            parsed = protocol.parse_sync(args, state.backend.id_attribute)
            req = Request(
                method=parsed.method,
                model=parsed.model,
                options=parsed.options,
                backend=backend,
                channel=client.channel,
                sid=sid,
                environ=client.environ,
                identity=client.identity,
                session=client.session,
                id_attribute=state.backend.id_attribute,
            )
            self.authorize(req.method, client, client.channel, req)
            if req.method == "read":
                positions = [self.head(stream).as_wire() for stream in self.streams(client)]
                result = state.backend.handle(req, timeout=self.settings.SYNC_TIMEOUT)
                return None, result, {"positions": positions}
            if not self.log_available():
                raise Unavailable("The change log is unavailable; the write was not made")
        except Exception as exc:
            return self.error_answer(exc, backend), None
        if parsed.idempotency_key is None:
            return self._write(state, req, sid)
        # Keyed after authorization: a refused request never started, so a
        # client that logs in again may retry it under the same key.
        req.idempotency = idempotency.IdempotencyKey(
            backend=backend,
            owner=idempotency.identity_scope(client.identity),
            key=parsed.idempotency_key,
            method=req.method,
            fingerprint=idempotency.fingerprint(req.method, req.model),
            expires_at=time.time() + float(self.settings.IDEMPOTENCY_TTL),
        )
        return self._keyed_write(state, req, sid)

    def _write(self, state: BackendState, req: Request, sid: str) -> tuple[Any, ...]:
        late = functools.partial(self._late_write, state.name, req)
        try:
            result = state.backend.handle(req, timeout=self.settings.SYNC_TIMEOUT, late=late)
        except Exception as exc:
            return self.error_answer(exc, state.name), None
        self.record(state.name, req.method, result, req.channel, req=req, origin=sid)
        return None, result

    def _keyed_write(self, state: BackendState, req: Request, sid: str) -> tuple[Any, ...]:
        """A write with an idempotencyKey: run once, answered the same every time after."""
        key = req.idempotency
        assert key is not None
        wait = float(self.settings.SYNC_TIMEOUT) + 1.0
        deadline = time.monotonic() + wait
        while True:
            try:
                claimed = self.keys.claim(key)
            except Exception as exc:  # IdempotencyKeyReused
                return self.error_answer(exc, state.name), None
            if claimed is None:
                break
            if isinstance(claimed, dict):
                return idempotency.ack(claimed)  # a repeat: answered, not notified again
            # The same request is in progress: its answer is this one's.
            left = deadline - time.monotonic()
            if left <= 0 or not claimed.wait(left):
                busy = SyncTimeout(
                    f"A write with this {idempotency.KEY_OPTION} is still in progress; retry later"
                )
                return self.error_answer(busy, state.name), None
        answer: idempotency.Answer | None = None
        try:
            late = functools.partial(self._late_write, state.name, req)
            try:
                result = state.backend.handle(req, timeout=self.settings.SYNC_TIMEOUT, late=late)
            except Exception as exc:
                if key.replayed is not None:
                    answer = key.replayed
                    return idempotency.ack(answer)
                error = self.error_answer(exc, state.name)
                if idempotency.remembered(exc):
                    answer = error
                return error, None
            if key.replayed is not None:  # the store answered from its record
                answer = key.replayed
                return idempotency.ack(answer)
            answer = idempotency.result_answer(result)
        finally:
            self.keys.finish(key, answer)
        self.record(state.name, req.method, result, req.channel, req=req, origin=sid)
        return None, result

    def _late_write(self, backend: str, req: Request, result: Any) -> None:
        key = req.idempotency
        if key is not None:
            if key.replayed is not None:  # nothing was written this time
                self.keys.remember_late(key, key.replayed)
                return
            self.keys.remember_late(key, idempotency.result_answer(result))
        # Its author was told Timeout, so it hears of the write like everyone.
        log.warning(
            "a %s on backend %r finished after SYNC_TIMEOUT; notifying it", req.method, backend
        )
        self.record(backend, req.method, result, req.channel, req=req, origin=None)

    def error_answer(self, exc: BaseException, backend: str) -> dict[str, Any]:
        return protocol.error_answer(exc, backend=backend, debug=self.settings.DEBUG)

    # -- the change log -----------------------------------------------------

    def emitted(self, backend: str, method: str, model: Any, channel: str | None) -> None:
        """``backend.emit()`` lands here."""
        self.record(backend, method, model, channel)

    def record(
        self,
        backend: str,
        method: str,
        model: Any,
        channel: str | None,
        *,
        req: Request | None = None,
        origin: str | None = None,
    ) -> None:
        """A successful write: tell ``after_write``, then append it to the change log."""
        if method not in WRITE_METHODS:
            raise ValueError(f"Only writes are recorded, not {method!r}")
        try:
            self.hook.after_write(
                backend=backend,
                method=method,
                result=model,
                req=req,
                settings=self.settings,
                hub=self,
            )
        except Exception:
            log.exception("after_write hook failed for backend %r", backend)
        # One key per write: appending it again after a failure whose answer
        # was lost must not log it twice.
        key = f"{self._key_prefix}{next(self._write_count)}"
        args = (backend, channel, method, model, origin, self.served[backend].retention, key)
        if self._pending:
            self._pending.append(args)  # behind earlier ones, to keep each stream's order
            return
        try:
            self._append(*args)
        except Exception as exc:
            # Stored, but not yet in the log: keep it and retry, so the
            # notification comes late rather than never.
            log.warning("change log append failed (%s); retrying", exc)
            self._pending.append(args)
            self._retry_later()

    def _append(
        self,
        backend: str,
        channel: str | None,
        method: str,
        model: Any,
        origin: str | None,
        retention: Retention,
        key: str,
    ) -> Entry:
        return self.log.append(
            backend, channel, method, model, origin=origin, retention=retention, key=key
        )

    def _retry_later(self) -> None:
        if not self._retrying:
            self._retrying = True
            runner.spawn(self._retry_pending)

    def _retry_pending(self) -> None:
        try:
            while self._pending:
                try:
                    self._append(*self._pending[0])
                except Exception:
                    runner.sleep(APPEND_RETRY_SECONDS)
                    continue
                self._pending.popleft()
        finally:
            self._retrying = False

    def log_available(self) -> bool:
        available = getattr(self.log, "available", None)
        return available() if callable(available) else True

    def deliver(self, entry: Entry) -> None:
        """Notify the clients of this process about ``entry``; the log calls it once per entry."""
        previous = self.heads.get(entry.stream)
        self.heads[entry.stream] = entry.position
        state = self.served.get(entry.backend)
        if state is None:
            return
        try:
            if previous is not None and (
                previous.epoch != entry.epoch or entry.seq > previous.seq + 1
            ):
                # Entries this process never got: live windows may be wrong.
                log.warning(
                    "change log of %r skipped from %s:%d to %s:%d; reading live queries again",
                    entry.backend,
                    previous.epoch,
                    previous.seq,
                    entry.epoch,
                    entry.seq,
                )
                self.live.refresh(entry.backend, self._live_visible)
            # Every write of the backend, on any channel, may move a window.
            self.live.deliver(entry, self._live_visible)
        except Exception:
            # Whatever a window makes of an odd entry, notifications still go out.
            log.exception("live queries of %r could not take an entry", entry.backend)
        listeners = state.clients if entry.channel is None else state.channels.get(entry.channel)
        if not listeners:
            return
        if self.manager_fans_out:
            # A pub/sub client manager without a shared log: it carries the
            # notification to every process, each filtering its own sockets.
            self.transport.send(
                entry.backend,
                self._payload(entry),
                channel=entry.channel,
                skip=entry.origin,
                local=False,
            )
            return
        if not self.filtering and not state.careful:
            self.transport.send(
                entry.backend, self._payload(entry), channel=entry.channel, skip=entry.origin
            )
            return
        recipients = []
        for sid, client in listeners.items():
            if sid == entry.origin:
                continue
            if client.replaying is not None:
                buffer = client.replaying.get(entry.stream)
                if buffer is not None:
                    buffer.append(entry)
                continue
            if client.replayed and not self._fresh_for(client, entry):
                continue
            if self.may_hear(client, entry):
                recipients.append(sid)
        if recipients:
            self._send(entry.backend, entry, recipients)

    def _send(self, backend: str, entry: Entry, sids: list[str]) -> None:
        self.transport.send(backend, self._payload(entry), to=sids)

    @staticmethod
    def _payload(entry: Entry) -> tuple[Any, ...]:
        return (entry.method, entry.model, entry.position.as_wire())


class Emitter:
    """Notify clients from another program: a worker, a cron job, a web view.

    ``Emitter(settings)`` builds the same hub ``backboneio serve`` runs,
    without serving anything; :meth:`emit` goes through ``after_write`` and
    the change log like a client's write. Useful with a change log shared by
    the server processes (the Redis plugin's); with the core's in-memory log
    the emitter's writes stay in the emitter's own process.
    """

    def __init__(self, settings: Settings, *, plugins: pluggy.PluginManager | None = None) -> None:
        from .app import build_hub  # the builder imports this module

        self.hub = build_hub(settings, plugins=plugins)

    def emit(self, backend: str, event: str, model: Any, channel: str | None = None) -> None:
        """``event`` is ``created``, ``updated``, ``patched`` or ``deleted``."""
        if backend not in self.hub.backends:
            raise ConfigurationError(
                f"No backend {backend!r} in the settings; known: {', '.join(self.hub.backends)}"
            )
        self.hub.backends[backend].emit(event, model, channel)

    def close(self) -> None:
        self.hub.close()
