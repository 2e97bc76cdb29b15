"""The Socket.IO side: one namespace per backend speaking the Backbone.IO protocol.

docs/protocol.md describes the messages; this module implements them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
import socketio
from socketio import packet

from . import jsonutil, runner
from .assets import ClientScriptApp, WSGIApp
from .backend import METHODS, WRITE_METHODS, Backend, Request
from .errors import (
    BadRequest,
    ConnectionRefused,
    Forbidden,
    PayloadTooLarge,
    SyncError,
    public_error,
)
from .plugins import load_plugins
from .recipients import with_recipient_filter
from .settings import Settings

log = logging.getLogger("backboneio")

ACKED_EVENTS = frozenset({"listen", "sync"})
# Names python-socketio triggers itself; a client sending them as events
# would re-run authentication with an environ of its own making.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})
MAX_CHANNEL_LENGTH = 256
FAR_FUTURE = 1e11  # seconds since the epoch: the year 5138


@dataclass
class Client:
    """What the server remembers about one socket on one backend namespace."""

    identity: Any = None
    environ: dict[str, Any] = field(default_factory=dict)
    channel: str | None = None
    session: dict[str, Any] = field(default_factory=dict)
    expiry: Any = None  # the timer that disconnects it when its identity expires


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


class Server(socketio.Server):
    """A ``socketio.Server`` that also knows its backends, settings and plugins.

    ``server.app`` is the WSGI application to serve: Socket.IO, the client
    script, and the application passed to :func:`listen` for everything else.
    """

    def __init__(
        self,
        settings: Settings,
        plugins: pluggy.PluginManager,
        app: WSGIApp | None = None,
        **options: Any,
    ) -> None:
        super().__init__(async_mode=runner.ASYNC_MODE, **options)
        self.settings = settings
        self.plugins = plugins
        self.backends: dict[str, Backend] = {}
        self.app: WSGIApp = ClientScriptApp(socketio.WSGIApp(self, app))

    def _handle_eio_message(self, eio_sid: str, data: Any) -> Any:
        # Engine.IO's own limit drops the connection; below it, an oversized
        # message is answered with an error and the socket stays usable.
        # (Binary attachments pass: backend namespaces refuse them whole.)
        limit = self.settings.MAX_MESSAGE_SIZE
        if limit and isinstance(data, str) and len(data) > limit:
            return self._refuse_oversized(eio_sid, data, limit)
        return super()._handle_eio_message(eio_sid, data)

    def _refuse_oversized(self, eio_sid: str, data: str, limit: int) -> None:
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception:
            log.warning("Dropped an oversized message that is not a Socket.IO packet")
            return
        error = public_error(
            PayloadTooLarge(
                f"Message of {len(data)} characters exceeds the limit of {limit}", limit=limit
            )
        )
        if pkt.packet_type == packet.EVENT and pkt.id is not None:
            self._send_packet(
                eio_sid,
                self.packet_class(
                    packet.ACK, namespace=pkt.namespace, id=pkt.id, data=[error, None]
                ),
            )
        elif pkt.packet_type == packet.EVENT:
            sid = self.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/")
            if sid is not None:
                self.emit("error", error, to=sid, namespace=pkt.namespace or "/")

    def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: list[Any], namespace: str, id: Any
    ) -> None:
        handler = self.namespace_handlers.get(namespace)
        if isinstance(handler, BackendNamespace):
            refusal = self._refuse_event(data, id)
            if refusal is not None:
                if id is not None:
                    self._send_packet(
                        eio_sid,
                        self.packet_class(
                            packet.ACK, namespace=namespace, id=id, data=[refusal, None]
                        ),
                    )
                else:
                    self.emit("error", refusal, to=sid, namespace=namespace)
                return
        super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)

    @staticmethod
    def _refuse_event(data: list[Any], id: Any) -> dict[str, Any] | None:
        """The error answering a client event a backend must not run, else None."""
        event = data[0] if data else None
        if not isinstance(event, str) or event in RESERVED_EVENTS:
            return public_error(BadRequest(f"{event!r} is not an event a client may send"))
        if id is None and event in ACKED_EVENTS:
            # listen and sync answer through the ack; without one the client
            # could never learn the outcome.
            error = public_error(
                BadRequest(f"{event!r} must be sent with an acknowledgement callback")
            )
            return {**error, "event": event}
        return None


class BackendNamespace(socketio.Namespace):
    """``/<backend name>``: listen, sync and the ``synced`` notifications."""

    def __init__(self, name: str, backend: Backend, server: Server) -> None:
        super().__init__(f"/{name}")
        self.name = name
        self.backend = backend
        self.sio = server
        self.settings = server.settings
        self.hook = server.plugins.hook
        self.clients: dict[str, Client] = {}
        backend.add_notifier(self.notify)

    def trigger_event(self, event: str, *args: Any) -> Any:
        # Clients cannot send connect/disconnect (Server._refuse_event); an event
        # nobody handles would leave a client waiting on its ack forever.
        if event in ("connect", "disconnect", "listen", "sync"):
            return super().trigger_event(event, *args)
        error = BadRequest(f"Unknown event {event!r}; a backend answers 'listen' and 'sync'")
        return public_error(error), None

    # -- connection ---------------------------------------------------------

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            identity = self.hook.authenticate(
                environ=environ, auth=auth, backend=self.name, settings=self.settings
            )
        except ConnectionRefused as exc:
            # The client's connect_error gets {"message": reason, "data": {...}}
            args = (exc.reason, exc.data) if exc.data else (exc.reason,)
            raise socketio.exceptions.ConnectionRefusedError(*args) from exc
        except Exception as exc:
            log.exception("authenticate hook failed for backend %r", self.name)
            message = (
                f"Authentication failed: {exc}" if self.settings.DEBUG else "Authentication failed"
            )
            raise socketio.exceptions.ConnectionRefusedError(message) from exc
        client = self.clients[sid] = Client(identity=identity, environ=environ)
        deadline = expires_at(identity)
        if deadline is not None:
            if deadline <= time.time():
                del self.clients[sid]
                raise socketio.exceptions.ConnectionRefusedError("Credentials expired")
            client.expiry = runner.call_later(deadline - time.time(), self.expire, sid, client)

    def expire(self, sid: str, client: Client) -> None:
        if self.clients.get(sid) is client:
            log.info("disconnecting %s from %r: its credentials expired", sid, self.name)
            self.disconnect(sid)

    def on_disconnect(self, sid: str, *reason: Any) -> None:
        client = self.clients.pop(sid, None)
        if client is not None and client.expiry is not None:
            client.expiry.cancel()

    def client(self, sid: str) -> Client:
        try:
            return self.clients[sid]
        except KeyError:  # disconnected while the message was on its way
            raise BadRequest("Not connected to this backend") from None

    # -- listen -------------------------------------------------------------

    def on_listen(self, sid: str, *args: Any) -> dict[str, Any]:
        try:
            client = self.client(sid)
            channel = args[0] if args else None
            if channel is not None and (
                not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL_LENGTH
            ):
                raise BadRequest(
                    f"A channel is null or a string of 1 to {MAX_CHANNEL_LENGTH} characters"
                )
            self.authorize("listen", client, channel, None)
            if client.channel is not None and client.channel != channel:
                self.leave_room(sid, client.channel)
            if channel is not None:
                self.enter_room(sid, channel)
            client.channel = channel
            return {"event": self.event_name(), "channel": channel}
        except Exception as exc:
            return self.error_answer(exc)

    def event_name(self) -> str:
        return self.hook.event_name(backend=self.name, settings=self.settings)

    # -- sync ---------------------------------------------------------------

    def on_sync(self, sid: str, *args: Any) -> tuple[Any, Any]:
        try:
            client = self.client(sid)
            req = self.parse_request(sid, client, args)
            self.authorize(req.method, client, client.channel, req)
            result = self.backend.handle(req, timeout=self.settings.SYNC_TIMEOUT)
        except Exception as exc:
            return self.error_answer(exc), None
        if req.method in WRITE_METHODS:
            self.written(req.method, result, req.channel, req=req, skip_sid=sid)
        return None, result

    def parse_request(self, sid: str, client: Client, args: tuple[Any, ...]) -> Request:
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
        jsonutil.check_value(model, "model")
        jsonutil.check_value(options, "options")
        if method in ("update", "patch", "delete") and model.get(self.backend.id_attribute) is None:
            raise BadRequest(
                f"{method} needs the model's {self.backend.id_attribute}", method=method
            )
        return Request(
            method=method,
            model=model,
            options=options,
            backend=self.name,
            channel=client.channel,
            sid=sid,
            environ=client.environ,
            identity=client.identity,
            session=client.session,
            id_attribute=self.backend.id_attribute,
        )

    def authorize(
        self, action: str, client: Client, channel: str | None, req: Request | None
    ) -> None:
        answers = self.hook.authorize(
            action=action,
            identity=client.identity,
            backend=self.name,
            channel=channel,
            req=req,
            settings=self.settings,
        )
        if any(answer is False for answer in answers):
            raise Forbidden(f"Not allowed to {action} on {self.name!r}")

    def error_answer(self, exc: BaseException) -> dict[str, Any]:
        if not isinstance(exc, SyncError):
            log.error("backend %r failed", self.name, exc_info=exc)
        return public_error(exc, debug=self.settings.DEBUG)

    # -- notifications ------------------------------------------------------

    def notify(self, method: str, model: Any, channel: str | None) -> None:
        """``backend.emit()`` lands here: tell every client (of ``channel``)."""
        self.written(method, model, channel)

    def written(
        self,
        method: str,
        result: Any,
        channel: str | None,
        *,
        req: Request | None = None,
        skip_sid: str | None = None,
    ) -> None:
        try:
            self.hook.after_write(
                backend=self.name, method=method, result=result, req=req, settings=self.settings
            )
        except Exception:
            log.exception("after_write hook failed for backend %r", self.name)
        self.broadcast(method, result, channel, skip_sid=skip_sid)

    def broadcast(
        self, method: str, model: Any, channel: str | None, *, skip_sid: str | None
    ) -> None:
        # Per-recipient rules, if any, apply inside the client manager, in
        # whichever process each recipient is connected to (recipients.py).
        try:
            self.emit("synced", (method, model), to=channel, skip_sid=skip_sid)
        except Exception:
            # The write is stored and its author must still get the answer.
            log.exception("could not notify the clients of backend %r", self.name)

    def recipient_check(self, sid: str, method: str, model: Any, channel: str | None) -> bool:
        client = self.clients.get(sid)
        return client is not None and self.recipient_allowed(client, method, model, channel)

    def recipient_allowed(
        self, client: Client, method: str, model: Any, channel: str | None
    ) -> bool:
        try:
            answers = self.hook.authorize_broadcast(
                identity=client.identity,
                method=method,
                model=model,
                backend=self.name,
                channel=channel,
            )
        except Exception:
            log.exception("authorize_broadcast hook failed; not notifying that client")
            return False
        return not any(answer is False for answer in answers)


def _origin_checker(settings: Settings) -> Callable[[str | None, dict[str, Any]], bool]:
    allowed = set(settings.cors_origins)

    def allowed_origin(origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None or "*" in allowed or origin in allowed:
            return True
        host = environ.get("HTTP_X_FORWARDED_HOST", environ.get("HTTP_HOST", "")).split(",")[0]
        schemes = {environ.get("wsgi.url_scheme", "http")}
        if "HTTP_X_FORWARDED_PROTO" in environ:  # behind a TLS-terminating proxy
            schemes.add(environ["HTTP_X_FORWARDED_PROTO"].split(",")[0].strip())
        return origin in {f"{scheme}://{host.strip()}" for scheme in schemes}

    return allowed_origin


def as_backend(name: str, backend: Any) -> Backend:
    if isinstance(backend, Backend):
        if not backend.name:
            backend.name = name
        return backend
    if callable(backend):  # a lone middleware, such as a store
        return Backend(name).use(backend)
    raise TypeError(f"Backend {name!r} must be a Backend or a middleware, got {backend!r}")


def listen(
    app: WSGIApp | None,
    backends: Mapping[str, Any],
    event: str = "backend",
    *,
    settings: Settings | None = None,
    plugins: pluggy.PluginManager | None = None,
    **socketio_options: Any,
) -> Server:
    """Serve ``backends`` over Socket.IO in front of the WSGI ``app`` (or alone).

    Returns the :class:`Server` (a ``socketio.Server``) for further
    customisation; serve ``server.app`` (or call :func:`backboneio.run`).
    """
    if settings is None:
        settings = Settings({"EVENT": event})
    if plugins is None:
        plugins = load_plugins(settings)
    options: dict[str, Any] = {
        "json": jsonutil,
        "cors_allowed_origins": _origin_checker(settings),
        # Engine.IO closes the connection above this; we answer with an error
        # below it (Server._handle_eio_message), so leave it room.
        "max_http_buffer_size": max(4 * settings.MAX_MESSAGE_SIZE, 1_000_000),
    }
    manager = plugins.hook.client_manager(settings=settings)
    if manager is not None:
        options["client_manager"] = manager
    options.update(socketio_options)
    backends = {name: as_backend(name, backend) for name, backend in backends.items()}
    options["namespaces"] = ["/", *(f"/{name}" for name in backends)]
    server = Server(settings, plugins, app, **options)
    for name, backend in backends.items():
        server.backends[name] = backend
        server.register_namespace(BackendNamespace(name, backend, server))
    plugins.hook.configure_server(sio=server, settings=settings)
    # After configure_server: a plugin may register its authorize_broadcast there.
    if plugins.hook.authorize_broadcast.get_hookimpls():
        with_recipient_filter(server.manager)
        for handler in server.namespace_handlers.values():
            if isinstance(handler, BackendNamespace):
                server.manager.recipient_checks[handler.namespace] = handler.recipient_check
    return server


def run(server: Server, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Serve ``server.app`` under eventlet until interrupted."""
    runner.serve(server.app, host, port, on_ready=lambda url: log.warning("backboneio on %s", url))
