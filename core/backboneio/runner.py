"""Everything that knows backboneio runs on eventlet lives here.

The rest of the core only asks this module to wait, spawn, sleep, move a
blocking call off the event loop, or serve a WSGI app. Moving to another
server (gevent, or python-socketio's asyncio server) means rewriting this
module, not the protocol or the backends; docs/eventlet.md has the details.

Serving also applies the production defaults (docs/deployment.md): no
WebSocket compression, TCP_NODELAY, a connection limit and listen backlog
sized for 10,000+ clients, the open-file limit they need, and time limits for
clients that never finish their request headers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import socket
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

# eventlet >= 0.37 warns on import that it is in bug-fix-only maintenance.
# We chose it knowingly (docs/eventlet.md); the warning would otherwise reach
# every user on every start and break test runs that turn warnings into errors.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet
    import eventlet.event
    import eventlet.hubs
    import eventlet.timeout
    import eventlet.tpool
    import eventlet.websocket
    import eventlet.wsgi

try:  # C masking of client frames (see _unmask); pure Python below if missing
    from wsaccel.xormask import XorMaskerSimple as _XorMasker
except ImportError:  # pragma: no cover - a platform wsaccel has no wheel for
    _XorMasker = None

if TYPE_CHECKING:
    from .settings import Settings

T = TypeVar("T")
ASYNC_MODE = "eventlet"
log = logging.getLogger("backboneio")

# Files the process needs besides its client sockets: the listening socket,
# database and Redis connections, log files, eventlet's thread-pool pipes.
RESERVED_FILES = 256

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


def within(seconds: float, fn: Callable[..., Any], *args: Any) -> bool:
    """Run ``fn(*args)`` in a green thread and wait at most ``seconds`` for it;
    False if it was still running (it is left to finish on its own)."""
    thread = eventlet.spawn(fn, *args)
    with eventlet.Timeout(seconds, False):
        thread.wait()
        return True
    return False


def offload(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (a C extension, a driver eventlet cannot patch) in a
    real OS thread, so the other clients keep being served meanwhile."""
    return cast(T, eventlet.tpool.execute(fn, *args, **kwargs))


# -- WebSocket frame unmasking ---------------------------------------------
#
# eventlet unmasks every client frame one byte at a time in Python: about
# 0.3 s of CPU per megabyte, during which no other client is served (the
# frame arrives without the socket blocking, so the loop never yields).
# wsaccel does it in C (under 1 ms per MB); without it, one XOR of two big
# integers still does it in C inside CPython (about 3 ms per MB).


def _unmask(data: bytes, mask: Iterable[int], length: int | None = None, offset: int = 0) -> bytes:
    """Same contract as eventlet's ``RFC6455WebSocket._apply_mask``: XOR the
    first ``length`` bytes of ``data`` with the 4-byte ``mask``, starting
    ``offset`` bytes into the frame."""
    if length is not None and length != len(data):
        data = data[:length]
    key = tuple(mask)
    shift = offset % 4
    key = key[shift:] + key[:shift]
    if _XorMasker is not None:
        return bytes(_XorMasker(bytes(key)).process(data))
    size = len(data)
    repeated = (bytes(key) * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        size, "little"
    )


def _install_fast_unmask() -> None:
    frame_class = getattr(eventlet.websocket, "RFC6455WebSocket", None)
    if frame_class is not None and hasattr(frame_class, "_apply_mask"):
        frame_class._apply_mask = staticmethod(_unmask)


_install_fast_unmask()


# -- serving -----------------------------------------------------------------


def _settings(settings: Settings | None) -> Settings:
    if settings is None:
        from .settings import Settings

        return Settings()
    return settings


def listen_socket(host: str, port: int, settings: Settings | None = None) -> socket.socket:
    """A listening socket with the ``LISTEN_BACKLOG`` setting (the kernel caps
    it at ``net.core.somaxconn``)."""
    backlog = _settings(settings).LISTEN_BACKLOG
    # eventlet defaults to SO_REUSEPORT, which would let a second server
    # silently share a port that is already in use.
    sock: socket.socket = eventlet.listen((host, port), reuse_port=False, backlog=backlog)
    return sock


def raise_open_file_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``needed`` if it is lower
    (and the hard limit too, where the system lets us). Returns the soft limit
    in force afterwards, which may still be below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    if soft == infinity or soft >= needed:
        return needed if soft == infinity else soft
    if hard != infinity and hard < needed:
        try:  # only a privileged process (or a container's root) may
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            pass
    target = needed if hard == infinity else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def connection_limit(settings: Settings | None = None) -> int:
    """Raise the open-file limit for ``MAX_CONNECTIONS`` and return how many
    connections the server will hold: ``MAX_CONNECTIONS``, or fewer with a
    one-line warning when the system refuses the limit they need."""
    wanted: int = _settings(settings).MAX_CONNECTIONS
    needed = wanted + RESERVED_FILES
    limit = raise_open_file_limit(needed)
    if limit >= needed:
        return wanted
    # Accepting past the limit fails with EMFILE, which stops eventlet's
    # accept loop for good; holding fewer connections keeps the server up.
    held = max(limit - RESERVED_FILES, limit // 2)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    log.warning(
        "backboneio: the open-file limit is %s (hard limit %s), below the %s that "
        "MAX_CONNECTIONS = %s needs; holding at most %s connections. Raise the limit "
        "(ulimit -n, systemd LimitNOFILE=) or lower MAX_CONNECTIONS.",
        limit,
        "unlimited" if hard == resource.RLIM_INFINITY else hard,
        needed,
        wanted,
        held,
    )
    return held


def without_compression(app: Callable[..., Any]) -> Callable[..., Any]:
    """A WSGI app that hides a client's permessage-deflate offer from ``app``.

    eventlet's WebSocket negotiates compression whenever the client offers
    it, and every browser does: that costs about 90 KiB of zlib state per
    connection and most of the CPU under fan-out, for JSON messages that are
    mostly small. Without the offer the handshake answers no extension."""

    def app_without_compression(environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return app(environ, start_response)

    return app_without_compression


class _HeaderTimeout(Exception):
    pass


class _Protocol(eventlet.wsgi.HttpProtocol):
    """eventlet's HTTP protocol with TCP_NODELAY, a deadline for headers and small buffers."""

    header_timeout: float | None = None
    nodelay: bool = True
    # The connection's HTTP read and write buffers (8 and 16 KiB by default)
    # live as long as it does, though a WebSocket reads and writes the raw
    # socket once upgraded: 1 KiB each saves about 8 KiB of RSS per idle
    # connection (docs/benchmarks.md). Longer lines and bodies are read and
    # written in several calls, not refused.
    rbufsize = wbufsize = 1024

    def setup(self) -> None:
        if self.nodelay:
            # Small Socket.IO packets would otherwise wait for the peer's
            # delayed ACK (tens of milliseconds per round trip).
            with contextlib.suppress(OSError):  # not TCP (a Unix socket), or gone
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def handle_one_request(self) -> None:
        # One deadline for the whole request line and headers, from the
        # moment the server waits for them (a new connection, or a kept-alive
        # one between requests): a per-read timeout would let a client that
        # sends a byte every few seconds hold its slot forever.
        self._header_deadline = eventlet.timeout.Timeout(self.header_timeout, _HeaderTimeout)
        self._got_request_line = False
        try:
            super().handle_one_request()
        except _HeaderTimeout:
            if self._got_request_line:
                try:
                    self.wfile.write(
                        b"HTTP/1.1 408 Request Timeout\r\n"
                        b"Connection: close\r\nContent-Length: 0\r\n\r\n"
                    )
                    self.wfile.flush()
                except OSError:
                    pass
            self.close_connection = True
        finally:
            self._header_deadline.cancel()

    def _read_request_line(self) -> Any:
        line = super()._read_request_line()
        self._got_request_line = bool(line)
        return line

    def parse_request(self) -> bool:
        try:
            parsed: bool = super().parse_request()
            return parsed
        finally:
            # The headers are in: the app's own time is not limited here.
            self._header_deadline.cancel()


class GracefulStop:
    """SIGTERM and SIGINT stop a server gently, a second one at once.

    The first signal runs ``shutdown`` in a green thread (it refuses new
    clients, waits for the requests in progress and closes every
    connection), then tells eventlet's accept loop to exit, from the hub as
    eventlet's own ``kill`` does, so :func:`serve` returns once the
    connections are gone. The handler itself only schedules: it runs inside
    eventlet's hub, where nothing may block or raise.
    """

    GRACE = 5.0  # seconds after shutdown() for the connections to close

    def __init__(self, shutdown: Callable[[], None] | None, limit: float) -> None:
        self.shutdown = shutdown
        self.limit = limit + self.GRACE  # for shutdown() itself, whatever it waits on
        self.serving = eventlet.getcurrent()
        self.stopping = False
        self.previous: dict[int, Any] = {}
        self.previous_wakeup = -1
        self._pipe: tuple[int, int] | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._on_signal)
        # eventlet's hub sleeps in epoll until its next timer, which on an
        # idle server is many seconds away, and a Python signal handler
        # runs only when it wakes. A byte on this pipe wakes it at once.
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        self._pipe = (read, write)
        self.previous_wakeup = signal.set_wakeup_fd(write)
        eventlet.spawn(self._drain_wakeups, read)

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self.previous_wakeup)
        if self._pipe is not None:
            for fd in self._pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pipe = None

    @staticmethod
    def _drain_wakeups(fd: int) -> None:
        with contextlib.suppress(OSError):
            while True:
                eventlet.hubs.trampoline(fd, read=True)
                os.read(fd, 512)

    def _shutdown(self) -> None:
        assert self.shutdown is not None
        try:
            self.shutdown()
        except Exception:
            log.exception("shutdown failed")

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            os._exit(1)
        self.stopping = True
        log.warning("%s: shutting down", signal.Signals(signum).name)
        eventlet.spawn(self._stop)

    def _stop(self) -> None:
        if self.shutdown is not None and not within(self.limit, self._shutdown):
            log.warning("shutdown still running after %.0f s; stopping anyway", self.limit)
        eventlet.hubs.get_hub().schedule_call_global(0, self.serving.throw, SystemExit)
        eventlet.sleep(self.GRACE)
        log.warning("connections still open %.0f s after shutdown: exiting", self.GRACE)
        os._exit(1)


def serve(
    app: Callable[..., Any],
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    sock: socket.socket | None = None,
    on_ready: Callable[[str], None] | None = None,
    settings: Settings | None = None,
    shutdown: Callable[[], None] | None = None,
) -> None:
    """Serve a WSGI app (with Socket.IO inside) until SIGTERM or SIGINT, with
    the production settings of ``settings`` (their defaults when None).

    ``shutdown`` runs on the first signal, before accepting stops; it should
    close every open connection (:meth:`backboneio.Server.shutdown` does),
    since serve returns only once they are all closed.
    """
    settings = _settings(settings)
    sock = sock or listen_socket(host, port, settings)
    max_connections = connection_limit(settings)
    if not settings.WEBSOCKET_COMPRESSION:
        app = without_compression(app)
    protocol = type(
        "Protocol",
        (_Protocol,),
        {"header_timeout": settings.HEADER_TIMEOUT, "nodelay": settings.TCP_NODELAY},
    )
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{bound_host}:{bound_port}"
    stop = GracefulStop(shutdown, float(settings.SHUTDOWN_TIMEOUT))
    stop.install()
    if on_ready is not None:
        on_ready(url)
    try:
        eventlet.wsgi.server(
            sock,
            app,
            max_size=max_connections,
            protocol=protocol,
            # Per socket operation: a request body or a response the client
            # stops reading. Engine.IO sets its own on WebSockets.
            socket_timeout=settings.IDLE_TIMEOUT,
            log_output=False,
            debug=False,
        )
    except KeyboardInterrupt:
        pass
    finally:
        stop.uninstall()
        sock.close()
