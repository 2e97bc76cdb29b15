"""Everything that knows backboneio runs on eventlet lives here.

The rest of the core only asks this module to wait, spawn, sleep, move a
blocking call off the event loop, or serve a WSGI app. Moving to another
server (gevent, or python-socketio's asyncio server) means rewriting this
module, not the protocol or the backends; docs/eventlet.md has the details.
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

# eventlet >= 0.37 warns on import that it is in bug-fix-only maintenance.
# We chose it knowingly (docs/eventlet.md); the warning would otherwise reach
# every user on every start and break test runs that turn warnings into errors.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet
    import eventlet.event
    import eventlet.tpool
    import eventlet.wsgi

T = TypeVar("T")
ASYNC_MODE = "eventlet"
log = logging.getLogger("backboneio")

_patched = False


def monkey_patch() -> None:
    """Make blocking standard-library calls cooperative (sockets, time.sleep, threads).

    Called by ``backboneio serve`` before any user code is imported, so that
    drivers like psycopg2 and redis-py yield to other clients while they wait.
    """
    global _patched
    if not _patched:
        eventlet.monkey_patch()
        _patched = True


class Signal:
    """A one-shot result slot that one green thread waits on and another fills."""

    def __init__(self) -> None:
        self._event = eventlet.event.Event()

    def send(self) -> None:
        if not self._event.ready():
            self._event.send(True)

    def wait(self, timeout: float | None) -> bool:
        """Wait until sent; False if ``timeout`` seconds passed first."""
        return bool(self._event.wait(timeout))


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return eventlet.spawn(fn, *args, **kwargs)


def call_later(seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a green thread after ``seconds``; ``.cancel()`` stops it."""
    return eventlet.spawn_after(seconds, fn, *args)


def sleep(seconds: float = 0) -> None:
    eventlet.sleep(seconds)


def offload(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (a C extension, a driver eventlet cannot patch) in a
    real OS thread, so the other clients keep being served meanwhile."""
    return eventlet.tpool.execute(fn, *args, **kwargs)


def listen_socket(host: str, port: int) -> socket.socket:
    # eventlet defaults to SO_REUSEPORT, which would let a second server
    # silently share a port that is already in use.
    return eventlet.listen((host, port), reuse_port=False)


def serve(
    app: Callable[..., Any],
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    sock: socket.socket | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve a WSGI app (with Socket.IO inside) until interrupted."""
    sock = sock or listen_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{bound_host}:{bound_port}"
    if on_ready is not None:
        on_ready(url)
    try:
        eventlet.wsgi.server(sock, app, log_output=False, debug=False)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
