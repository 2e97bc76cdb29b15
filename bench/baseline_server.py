"""The baseline: a bare python-socketio server on eventlet, no backboneio.

Its ``sync`` handler keeps models in a dict with no copying, checking or
hooks, answers straight away and, for creates, broadcasts ``synced`` the way
backboneio does. The difference measured is backboneio's own work: request
checks, the middleware stack, the memory store's copies and queries, the hooks.

Usage: python baseline_server.py PORT
"""

from __future__ import annotations

import sys
import uuid
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet
    import eventlet.wsgi

import socketio

sio = socketio.Server(async_mode="eventlet", namespaces=["/", "/messages"])
models: dict[str, dict] = {}


@sio.on("listen", namespace="/messages")
def listen(sid, channel=None):
    return {"event": "backend", "channel": channel}


@sio.on("sync", namespace="/messages")
def sync(sid, req):
    model = dict(req.get("model") or {})
    if req.get("method") == "read":
        return None, list(models.values())
    if req.get("method") == "create":
        model.setdefault("id", uuid.uuid4().hex)
        models[model["id"]] = model
        sio.emit("synced", ("create", model), namespace="/messages", skip_sid=sid)
    return None, model


if __name__ == "__main__":
    port = int(sys.argv[1])
    sock = eventlet.listen(("127.0.0.1", port), reuse_port=False)
    print(f"backboneio serving on http://127.0.0.1:{port} (baseline)", flush=True)
    eventlet.wsgi.server(sock, socketio.WSGIApp(sio), log_output=False)
