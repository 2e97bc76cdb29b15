"""A server built with the Python API instead of settings: `backboneio.listen()` in
front of a tiny WSGI app whose ``/emit`` URL calls ``backend.emit()``, the way
ordinary server code (a cron job, an admin view) would tell clients of a change.

Usage: python emitter.py PORT
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import parse_qs

import backboneio
from backboneio import runner

runner.monkey_patch()

messages = backboneio.create_backend()
messages.use(backboneio.stores.memory())


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] != "/emit":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    event = query.pop("event", "created")
    channel = query.pop("channel", None)
    messages.emit(event, query, channel=channel)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"emitted": event}).encode()]


if __name__ == "__main__":
    server = backboneio.listen(app, {"messages": messages}, event="news")
    port = int(sys.argv[1])
    runner.serve(
        server.app,
        "127.0.0.1",
        port,
        on_ready=lambda url: print(f"backboneio serving on {url}", flush=True),
    )
