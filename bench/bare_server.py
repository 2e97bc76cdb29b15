"""The bare peer: python-socketio on eventlet speaking Backbone.IO's wire, no backboneio.

Tuned the way a production deployment would be: permessage-deflate is not
negotiated (the offer is removed from the environ before eventlet's websocket
sees it), every accepted socket has TCP_NODELAY, the green-thread pool and the
listen backlog are sized for tens of thousands of connections. What it does
per request is the least the protocol needs: ``listen`` answers the options,
``sync`` stores a create in a dict, emits ``synced`` to every other socket and
acks ``(null, model)``. The gap to backboneio is then the framework's own work.

Usage: python bare_server.py PORT
"""

from __future__ import annotations

import socket
import sys
import uuid
import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet
    import eventlet.wsgi

import socketio

MAX_CONNECTIONS = 20_000
BACKLOG = 4096

sio = socketio.Server(async_mode="eventlet", namespaces=["/", "/messages"])
models: dict[str, dict[str, Any]] = {}


@sio.on("listen", namespace="/messages")
def listen(sid: str, channel: str | None = None) -> dict[str, Any]:
    return {"event": "backend", "channel": channel}


@sio.on("sync", namespace="/messages")
def sync(sid: str, req: dict[str, Any]) -> tuple[Any, Any]:
    model = dict(req.get("model") or {})
    method = req.get("method")
    if method == "read":
        return None, list(models.values())
    if method == "create":
        model.setdefault("id", uuid.uuid4().hex)
        models[model["id"]] = model
        sio.emit("synced", ("create", model), namespace="/messages", skip_sid=sid)
    return None, model


def no_deflate(app: Any) -> Any:
    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return app(environ, start_response)

    return wsgi


class NoDelayListener:
    """The listening socket, setting TCP_NODELAY on each socket it accepts."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def accept(self) -> tuple[Any, Any]:
        client, addr = self._sock.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, addr

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


if __name__ == "__main__":
    port = int(sys.argv[1])
    sock = eventlet.listen(("127.0.0.1", port), reuse_port=False, backlog=BACKLOG)
    print(f"bare serving on http://127.0.0.1:{port}", flush=True)
    eventlet.wsgi.server(
        NoDelayListener(sock),
        no_deflate(socketio.WSGIApp(sio)),
        log_output=False,
        debug=False,
        max_size=MAX_CONNECTIONS,
    )
