"""Real python-socketio clients over WebSocket that speak the backboneio protocol.

::

    from backboneio.testing.client import BackendClient

    with BackendClient(server.url, "notes") as alice, BackendClient(server.url, "notes") as bob:
        bob.listen()
        created = alice.ok("create", {"text": "hi"})
        assert bob.next_synced() == ("create", created)

Needs the ``test`` extra (``pip install "backboneio[test]"``: python-socketio's
client and websocket-client); without it a client fails to connect with an
error that says so.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import socketio

#: Seconds a call, a connection or :meth:`BackendClient.next_synced` waits by default.
TIMEOUT = 10
EXTRA_HINT = 'the backboneio test client needs websocket-client: pip install "backboneio[test]"'


def require_client_extra() -> None:
    """Raise a RuntimeError saying what to install if the client's dependencies are missing."""
    try:
        import websocket  # noqa: F401  (websocket-client)
    except ImportError:
        raise RuntimeError(EXTRA_HINT) from None


class WireOrderClient(socketio.Client):  # type: ignore[misc]  # socketio has no types
    """python-socketio's client, handling incoming messages in the order the
    server sent them.

    python-socketio's client starts a thread for every message it receives,
    so two notifications sent back to back may reach their handlers swapped,
    and a test that checks order fails now and then. This one hands each
    socket's messages to one worker thread instead (not the reading thread: a
    handler may disconnect, which waits for the reader). It leans on two
    internals of python-socketio and python-engineio, kept here alone:
    ``Client._engineio_client_class`` and engineio delivering each message
    through ``start_background_task(handlers["message"], ...)``;
    ``tests/test_plugin_kit.py::test_the_test_client_hears_notifications_in_wire_order``
    fails if either changes.
    """

    def _engineio_client_class(self) -> type[Any]:
        return _in_order(super()._engineio_client_class())


def _in_order(base: type[Any]) -> type[Any]:
    class InOrder(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._inbox: queue.SimpleQueue[tuple[Any, tuple[Any, ...]]] = queue.SimpleQueue()
            self._worker: threading.Thread | None = None
            self._worker_lock = threading.Lock()
            self.in_order = 0  # messages handled through the inbox

        def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
            if target is not self.handlers.get("message") or kwargs:
                return super().start_background_task(target, *args, **kwargs)
            self._inbox.put((target, args))
            self.in_order += 1
            with self._worker_lock:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._work, daemon=True)
                    self._worker.start()
            return None

        def _work(self) -> None:
            # Ends a second after the inbox ran dry; the next message starts another.
            while True:
                try:
                    handler, args = self._inbox.get(timeout=1.0)
                except queue.Empty:
                    with self._worker_lock:
                        if self._inbox.empty():
                            self._worker = None
                            return
                    continue
                try:
                    handler(*args)
                except Exception:
                    self.logger.exception("message handler error")

    InOrder.__name__ = InOrder.__qualname__ = f"InOrder{base.__name__}"
    return InOrder


class BackendClient:
    """One socket connected to one backend namespace, recording what it hears."""

    def __init__(
        self,
        url: str,
        backend: str,
        *,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        connect: bool = True,
    ) -> None:
        self.url = url
        self.backend = backend
        self.namespace = f"/{backend}"
        self.sio = WireOrderClient(reconnection=False)
        self.synced: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._peeked: list[tuple[str, Any]] = []  # what heard_nothing() saw, still first
        self.errors: queue.Queue[Any] = queue.Queue()
        # Positions (the third argument since the change log) are kept apart,
        # so tests of the 0.4 protocol compare (method, model) as before.
        self.positions: list[Any] = []
        # Live queries' events, as (subscription id, kind, model, meta).
        self.queries: queue.Queue[tuple[str, str, Any, dict[str, Any]]] = queue.Queue()
        self.sio.on("synced", self._synced, namespace=self.namespace)
        self.sio.on("query", self._query, namespace=self.namespace)
        self.sio.on("error", lambda data: self.errors.put(data), namespace=self.namespace)
        if connect:
            self.connect(auth=auth, headers=headers)

    def connect(self, *, auth: Any = None, headers: dict[str, str] | None = None) -> None:
        require_client_extra()
        self.sio.connect(
            self.url,
            namespaces=[self.namespace],
            transports=["websocket"],
            auth=auth,
            headers=headers or {},
            wait_timeout=TIMEOUT,
        )

    def _synced(self, method: str, model: Any, position: Any = None) -> None:
        self.positions.append(position)
        self.synced.put((method, model))

    def _query(self, sub_id: str, kind: str, model: Any, meta: dict[str, Any]) -> None:
        self.queries.put((sub_id, kind, model, meta))

    def subscribe(self, sub_id: str, query: Any = None) -> tuple[Any, Any]:
        """A live query (docs/live-queries.md); the ack as ``(error, answer)``.

        The events it causes arrive in :attr:`queries`, in wire order.
        """
        ack = self.call("subscribe", {"id": sub_id, "query": query or {}})
        return ack[0], ack[1]

    def unsubscribe(self, sub_id: str) -> tuple[Any, Any]:
        ack = self.call("unsubscribe", sub_id)
        return ack[0], ack[1]

    def listen(self, channel: str | None = None) -> Any:
        """The listen answer's 0.4 part ({event, channel}) or its error."""
        answer = self.listen_answer(channel)
        if isinstance(answer, dict) and "error" not in answer:
            return {key: answer[key] for key in ("event", "channel") if key in answer}
        return answer

    def listen_answer(self, channel: str | None = None, since: Any = None) -> Any:
        """The whole listen answer, positions and recovery included."""
        if since is not None:
            return self.sio.call(
                "listen", (channel, {"since": since}), namespace=self.namespace, timeout=TIMEOUT
            )
        return (
            self.sio.call("listen", channel, namespace=self.namespace, timeout=TIMEOUT)
            if channel is not None
            else self.sio.call("listen", namespace=self.namespace, timeout=TIMEOUT)
        )

    def sync(self, method: str, model: Any = None, options: Any = None) -> tuple[Any, Any]:
        """Send a sync and return the ack as ``(error, result)``."""
        req = {
            "method": method,
            "model": model if model is not None else {},
            "options": options or {},
        }
        ack = self.call("sync", req)
        # A read's ack carries a third argument, {"positions": [...]}.
        self.last_ack = ack
        return ack[0], ack[1]

    def call(self, event: str, *args: Any) -> Any:
        data = args[0] if len(args) == 1 else tuple(args)
        return self.sio.call(event, data, namespace=self.namespace, timeout=TIMEOUT)

    def ok(self, method: str, model: Any = None, options: Any = None) -> Any:
        """A sync that must succeed; returns its result."""
        error, result = self.sync(method, model, options)
        assert error is None, error
        return result

    def next_synced(self, timeout: float = TIMEOUT) -> tuple[str, Any]:
        """The next ``synced`` notification heard, as ``(method, model)``, waiting for it.

        Raises ``queue.Empty`` after ``timeout`` seconds without one. Only a
        client that has called :meth:`listen` hears notifications.
        """
        return self._take(timeout)

    def _take(self, timeout: float) -> tuple[str, Any]:
        if self._peeked:
            return self._peeked.pop()
        return self.synced.get(timeout=timeout)

    def wait_synced(
        self, method: str | None = None, *, timeout: float = TIMEOUT, **attributes: Any
    ) -> Any:
        """The model of the first notification for ``method`` whose model has ``attributes``.

        Notifications heard before it that do not match are dropped. Fails the
        test (AssertionError) if none arrives within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                got, model = self._take(max(left, 0))
            except queue.Empty:
                raise AssertionError(
                    f"no {method or 'synced'} notification with {attributes} "
                    f"on /{self.backend} within {timeout} s"
                ) from None
            if method is not None and got != method:
                continue
            if isinstance(model, dict) and all(
                model.get(key) == value for key, value in attributes.items()
            ):
                return model

    def heard_nothing(self, wait: float = 0.3) -> bool:
        """True if no notification arrives within ``wait`` seconds; one that
        does stays the next one :meth:`next_synced` returns."""
        if self._peeked:
            return False
        try:
            got = self.synced.get(timeout=wait)
        except queue.Empty:
            return True
        self._peeked.append(got)
        return False

    def close(self) -> None:
        self.sio.disconnect()

    def __enter__(self) -> BackendClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def refusal(
    url: str,
    backend: str,
    *,
    auth: Any = None,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
) -> Any:
    """Try to connect; the ``connect_error`` data the server sent, or None if it accepted.

    A refusal at the Engine.IO level (such as a bad Origin) has no Socket.IO
    reason; it is reported as the string ``"engine.io refused"``.
    """
    require_client_extra()
    extra = {"origin": origin} if origin else {}
    sio = socketio.Client(reconnection=False, websocket_extra_options=extra)
    namespace = f"/{backend}"
    errors: queue.Queue[Any] = queue.Queue()
    sio.on(
        "connect_error", lambda *data: errors.put(data[0] if data else None), namespace=namespace
    )
    try:
        sio.connect(
            url,
            namespaces=[namespace],
            transports=["websocket"],
            auth=auth,
            headers=headers or {},
            wait_timeout=TIMEOUT,
        )
    except socketio.exceptions.ConnectionError as exc:
        try:
            data = errors.get(timeout=TIMEOUT)
        except queue.Empty:
            data = None
        # A Socket.IO refusal carries {"message": ...}; a refused Engine.IO
        # handshake (HTTP 400) only a transport error string.
        return data if isinstance(data, dict) else f"engine.io refused: {data or exc}"
    else:
        sio.disconnect()
        return None
