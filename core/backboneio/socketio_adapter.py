"""The Socket.IO side: a thin adapter between python-socketio and the hub.

Each backend is a namespace whose handlers only hand over to the hub
(hub.py) and return its answer as the ack. Frames a backend must not run
are caught while decoding, in :class:`WirePacket`, python-socketio's public
``serializer=`` hook: binary events, malformed or oversized packets and
reserved event names become a refusal the namespace answers, so every frame
that carries an ack id gets an answer and no frame leaves a connection
waiting for attachments. This is the only module that imports socketio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import socketio
from socketio import packet

from . import jsonutil, protocol, runner
from .assets import ClientScriptApp, WSGIApp
from .errors import BadRequest, ConnectionRefused, PayloadTooLarge, SyncError, public_error
from .health import HealthApp
from .hub import Hub
from .recipients import with_recipient_filter

log = logging.getLogger("backboneio")
CLOSE_SECONDS = 2.0  # for every connection to be told to close when draining
HEADER_SCAN = 300  # characters of an oversized packet read to find its namespace and ack id
# A refresh's outcome, like a listen's or a sync's, only reaches the client in the ack.
ACKED_EVENTS = protocol.CLIENT_EVENTS | {"refresh", "presence", "subscribe", "unsubscribe"}


class Refused:
    """The event name a refused frame is decoded to; no client can send it."""

    def __repr__(self) -> str:
        return "<refused frame>"


REFUSED = Refused()


class WirePacket(packet.Packet):
    """python-socketio's packet, decoding only what a backend may run.

    ``max_size`` and ``warn`` are set on a subclass made per server.
    """

    uses_binary_events = False  # never sent: no scan of every outgoing payload for bytes
    max_size = 0
    warn: protocol.RateLimitedWarning = protocol.RateLimitedWarning()
    # What python-socketio's Packet sets (it has no annotations of its own).
    packet_type: int
    namespace: str | None
    id: int | None
    data: Any

    def decode(self, encoded_packet: Any) -> int:
        try:
            self._decode(encoded_packet)
        except Exception as exc:  # whatever the frame, never a traceback per frame
            self._refuse(BadRequest("Malformed Socket.IO packet"), f"{type(exc).__name__}")
        return 0  # no attachments are ever awaited

    def _decode(self, encoded: Any) -> None:
        if not isinstance(encoded, str):
            # An attachment of a binary event we refused (or of none at all).
            self.packet_type, self.namespace, self.id = packet.EVENT, None, None
            self.data = [REFUSED, None, False]
            self.warn("binary", "a binary attachment (backends take JSON only)")
            return
        if self.max_size and len(encoded) > self.max_size:
            self._header(encoded[:HEADER_SCAN])
            error = PayloadTooLarge(
                f"Message of {len(encoded)} characters exceeds the limit of {self.max_size}",
                limit=self.max_size,
            )
            self._refuse(error, "an oversized message")
            return
        try:
            attachments = super().decode(encoded)
        except Exception as exc:
            # The header was read before the payload failed: answer its ack.
            self._refuse(BadRequest("The message is not valid JSON"), f"{type(exc).__name__}")
            return
        kind = self.packet_type
        if attachments or kind in (packet.BINARY_EVENT, packet.BINARY_ACK):
            self._refuse(
                BadRequest("Binary data is not accepted; send JSON"),
                "a binary event",
                answer=kind == packet.BINARY_EVENT,
            )
        elif kind == packet.EVENT:
            refusal = protocol.refusal(self.data)
            if refusal is not None:
                self._refuse(refusal, "an event that is not [name, ...args]")
            elif self.id is None and self.data[0] in ACKED_EVENTS:
                event = self.data[0]
                self._refuse(protocol.missing_ack(event), "an event without its ack")
                self.data[1]["event"] = event  # the client learns which of its events it was
        elif kind not in (packet.CONNECT, packet.DISCONNECT, packet.ACK):
            self._refuse(
                BadRequest("Unexpected packet type"), f"packet type {kind!r}", answer=False
            )

    def _header(self, text: str) -> None:
        """The namespace and ack id of a packet whose payload is not decoded."""
        self.namespace, self.id = None, None
        rest = text[1:]
        dash = rest.find("-")
        if 0 < dash <= 10 and rest[:dash].isdigit():
            rest = rest[dash + 1 :]
        if rest.startswith("/"):
            comma = rest.find(",")
            if comma == -1:
                return  # the namespace runs past what was scanned
            self.namespace, rest = rest[:comma].partition("?")[0], rest[comma + 1 :]
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if 0 < digits < 100:
            self.id = int(rest[:digits])

    def _refuse(self, error: SyncError, what: str, *, answer: bool = True) -> None:
        self.warn(what, what)
        self.packet_type = packet.EVENT
        if not answer:
            self.id = None
        self.data = [REFUSED, public_error(error) if answer else None, self.id is not None]


def packet_class(max_size: int) -> type[WirePacket]:
    return type("ServerWirePacket", (WirePacket,), {"max_size": max_size})


class RefusingNamespace(socketio.Namespace):
    """Answers refused frames, and unknown events, on a namespace no backend has."""

    def trigger_event(self, event: Any, *args: Any) -> Any:
        if event is REFUSED:
            return self.refused(*args)
        if event in ("connect", "disconnect"):
            return super().trigger_event(event, *args)
        return public_error(protocol.unknown_event(str(event))), None

    def refused(self, sid: str, error: dict[str, Any] | None, acked: bool) -> Any:
        if error is None:
            return None
        if acked:  # python-socketio sends it as the frame's ack
            return error, None
        # Without an ack id the client hears of it as an ``error`` event.
        self.emit("error", error, to=sid)
        return None


class BackendNamespace(RefusingNamespace):
    """``/<backend name>``: listen, sync, refresh, presence, live queries and the
    notifications."""

    def __init__(self, name: str, hub: Hub) -> None:
        super().__init__(f"/{name}")
        self.name = name
        self.hub = hub

    def trigger_event(self, event: Any, *args: Any) -> Any:
        if event == "sync":
            return self.hub.sync(self.name, args[0], args[1:])
        if event == "listen":
            return self.hub.listen(self.name, args[0], args[1:])
        if event == "refresh":
            return self.hub.refresh(self.name, args[0], args[1:])
        if event == "presence":
            return self.hub.presence_request(self.name, args[0], args[1:])
        if event == "subscribe":
            return self.hub.subscribe(self.name, args[0], args[1:])
        if event == "unsubscribe":
            return self.hub.unsubscribe(self.name, args[0], args[1:])
        return super().trigger_event(event, *args)

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            self.hub.connect(self.name, sid, environ, auth)
        except ConnectionRefused as exc:
            # The client's connect_error gets {"message": reason, "data": {...}}
            args = (exc.reason, exc.data) if exc.data else (exc.reason,)
            raise socketio.exceptions.ConnectionRefusedError(*args) from exc

    def on_disconnect(self, sid: str, *reason: Any) -> None:
        self.hub.disconnect(self.name, sid)


class Transport:
    """The hub's way out to the sockets, through python-socketio's public emit."""

    def __init__(self, server: socketio.Server) -> None:
        self.server = server
        self.pubsub = isinstance(server.manager, socketio.PubSubManager)

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
        if to is not None and not to:
            return  # an empty list would mean everyone to python-socketio
        try:
            self.server.emit(
                "synced",
                data,
                to=to if to is not None else channel,
                skip_sid=skip,
                namespace=f"/{backend}",
                ignore_queue=local,
            )
        except Exception:
            # The write is stored and its author must still get the answer.
            log.exception("could not notify the clients of backend %r", backend)

    def send_presence(self, backend: str, data: tuple[Any, ...], *, to: list[str]) -> None:
        try:
            self.server.emit("presence", data, to=to, namespace=f"/{backend}", ignore_queue=True)
        except Exception:
            log.exception("could not tell the clients of backend %r about presence", backend)

    def send_query(self, backend: str, data: tuple[Any, ...], to: str) -> None:
        try:
            self.server.emit("query", data, to=to, namespace=f"/{backend}", ignore_queue=True)
        except Exception:
            log.exception("could not tell a client of backend %r about its live query", backend)

    def join(self, backend: str, sid: str, channel: str | None, old: str | None) -> None:
        namespace = f"/{backend}"
        if old is not None:
            self.server.leave_room(sid, old, namespace=namespace)
        if channel is not None:
            self.server.enter_room(sid, channel, namespace=namespace)

    def disconnect(self, backend: str, sid: str) -> None:
        self.server.disconnect(sid, namespace=f"/{backend}")


class Server(socketio.Server):
    """A ``socketio.Server`` that also knows its hub.

    ``server.app`` is the WSGI application to serve: Socket.IO, the client
    script, and the application passed to :func:`backboneio.listen` for
    everything else.
    """

    def __init__(self, hub: Hub, app: WSGIApp | None = None, **options: Any) -> None:
        super().__init__(async_mode=runner.ASYNC_MODE, **options)
        self.hub = hub
        self.settings = hub.settings
        self.plugins = hub.plugins
        self.app: WSGIApp = HealthApp(ClientScriptApp(socketio.WSGIApp(self, app)), hub)

    @property
    def backends(self) -> dict[str, Any]:
        return self.hub.backends

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain: refuse new clients, wait up to ``timeout`` seconds (default
        ``SHUTDOWN_TIMEOUT``) for the syncs in progress, then close every
        connection, so each client reconnects (to another process, behind a
        load balancer) and resumes from its positions."""
        hub = self.hub
        timeout = hub.settings.SHUTDOWN_TIMEOUT if timeout is None else timeout
        clients = sum(len(state.clients) for state in hub.served.values())
        log.warning("draining: %d client(s), %d request(s) in progress", clients, hub.in_flight)
        left = hub.drain(timeout)
        if left:
            log.warning("%d request(s) still running after %.1f s; closing anyway", left, timeout)
        # Closing at the Engine.IO level (not a Socket.IO disconnect) is what
        # makes clients reconnect on their own. A session whose transport is
        # already gone can wait forever for its queue to flush: bounded here.
        if not runner.within(CLOSE_SECONDS, self.eio.disconnect):
            log.warning("some connections did not close within %.0f s", CLOSE_SECONDS)
        hub.close()


def origin_checker(allowed_origins: list[str]) -> Callable[[str | None, dict[str, Any]], bool]:
    allowed = set(allowed_origins)

    def allowed_origin(origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None or "*" in allowed or origin in allowed:
            return True
        host = environ.get("HTTP_X_FORWARDED_HOST", environ.get("HTTP_HOST", "")).split(",")[0]
        schemes = {environ.get("wsgi.url_scheme", "http")}
        if "HTTP_X_FORWARDED_PROTO" in environ:  # behind a TLS-terminating proxy
            schemes.add(environ["HTTP_X_FORWARDED_PROTO"].split(",")[0].strip())
        return origin in {f"{scheme}://{host.strip()}" for scheme in schemes}

    return allowed_origin


def quiet_logger(name: str) -> logging.Logger:
    # python-socketio and python-engineio add a handler of their own to their
    # default loggers, so with the application's root handler every line came
    # out twice; ours propagate to the root logger only. Their warnings are
    # per frame ("... is not connected to namespace /"), which a hostile
    # client can repeat at will: only errors get through.
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    return logger


def serve_hub(hub: Hub, app: WSGIApp | None = None, **socketio_options: Any) -> Server:
    """The Socket.IO server for ``hub``, ready to serve ``server.app``."""
    settings = hub.settings
    limit = settings.MAX_MESSAGE_SIZE
    options: dict[str, Any] = {
        "json": jsonutil,
        "serializer": packet_class(limit),
        "cors_allowed_origins": origin_checker(settings.cors_origins),
        # Engine.IO closes the connection above this; below it the packet is
        # answered with PayloadTooLarge (WirePacket), so leave it room.
        "max_http_buffer_size": max(4 * limit, 1_000_000),
        "logger": quiet_logger("backboneio.socketio"),
        "engineio_logger": quiet_logger("backboneio.engineio"),
    }
    manager = hub.hook.client_manager(settings=settings, hub=hub)
    if manager is not None:
        options["client_manager"] = manager
    options.update(socketio_options)
    options["namespaces"] = ["/", *(f"/{name}" for name in hub.backends)]
    server = Server(hub, app, **options)
    server.register_namespace(RefusingNamespace("/"))
    for name in hub.backends:
        server.register_namespace(BackendNamespace(name, hub))
    hub.hook.configure_server(sio=server, settings=settings, hub=hub)
    transport = Transport(server)
    hub.start(transport)
    if hub.manager_fans_out and hub.filtering:
        # Without a shared change log each process filters the sockets it
        # holds inside the manager's local delivery (recipients.py).
        with_recipient_filter(server.manager)
        for name in hub.backends:
            server.manager.recipient_checks[f"/{name}"] = _check_for(hub, name)
    return server


def _check_for(hub: Hub, backend: str) -> Callable[[str, str, Any, Any], bool]:
    def check(sid: str, method: str, model: Any, channel: Any) -> bool:
        return hub.recipient_check(backend, sid, method, model, channel)

    return check
