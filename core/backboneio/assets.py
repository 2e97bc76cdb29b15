"""Serves the browser client, backbone.io.js, next to the Socket.IO endpoint."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

CLIENT_SCRIPT_PATHS = frozenset({"/socket.io/backbone.io.js", "/backbone.io.js"})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def client_script() -> bytes:
    return resources.files("backboneio").joinpath("static/backbone.io.js").read_bytes()


class ClientScriptApp:
    """WSGI middleware: the client script at its two URLs, everything else to ``app``.

    It sits in front of Socket.IO because ``/socket.io/backbone.io.js`` (the
    URL Backbone.IO used) lies under the Socket.IO endpoint's own path.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.body = client_script()
        self.etag = '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in CLIENT_SCRIPT_PATHS:
            return self.app(environ, start_response)
        if environ.get("HTTP_IF_NONE_MATCH") == self.etag:
            start_response("304 Not Modified", [("ETag", self.etag)])
            return [b""]
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/javascript; charset=utf-8"),
                ("Content-Length", str(len(self.body))),
                ("ETag", self.etag),
                ("Cache-Control", "no-cache"),
            ],
        )
        return [self.body]
