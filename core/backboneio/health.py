"""``GET /healthz`` and ``GET /readyz``, for load balancers and orchestrators.

``/healthz`` says the process is alive and serving (200), or shutting down
(503), so a supervisor restarts only a process that stopped answering.
``/readyz`` says whether to send it new clients: 503 while it drains or while
its change log is unavailable (writes would be refused), with the figures
behind the answer as JSON. While the server drains, new Socket.IO
handshakes are refused here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import jsonutil
from .assets import WSGIApp
from .hub import Hub

PATHS = frozenset({"/healthz", "/readyz"})
SOCKETIO_PATH = "/socket.io/"


class HealthApp:
    """WSGI middleware answering the two health paths, everything else to ``app``."""

    def __init__(self, app: WSGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        if self.hub.draining and path.startswith(SOCKETIO_PATH) and is_handshake(environ):
            # Refused at the handshake, a client retries with backoff (and a
            # load balancer sends it elsewhere); refused at a namespace, it
            # would give up.
            return answer(start_response, "503 Service Unavailable", {"error": "shutting down"})
        if path not in PATHS or not self.hub.settings.HEALTH_CHECKS:
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return answer(start_response, "405 Method Not Allowed", {"error": "GET only"})
        report = self.hub.health()
        if path == "/healthz":
            ok = not report["draining"]
            body = {"status": "ok" if ok else "draining"}
        else:
            ok = report["ready"]
            body = {"status": "ready" if ok else "unavailable", **report}
        return answer(start_response, "200 OK" if ok else "503 Service Unavailable", body)


def is_handshake(environ: dict[str, Any]) -> bool:
    """A new Engine.IO session: a request to the endpoint without a ``sid``."""
    return "sid=" not in environ.get("QUERY_STRING", "")


def answer(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    data = jsonutil.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]
