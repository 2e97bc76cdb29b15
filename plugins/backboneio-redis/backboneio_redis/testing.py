"""A throw-away redis-server for tests and benchmarks of code using this plugin.

from backboneio_redis.testing import RedisServer

server = RedisServer("/usr/bin/redis-server").start()
try:
    ...  # server.url
finally:
    server.close()
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` in a temporary directory, without persistence unless
    ``persistent`` (an append-only file synced on every write, so a restart
    loses nothing).

    ``stop()`` and ``start()`` keep the port, so tests can take Redis away
    and bring it back where clients expect it.
    """

    def __init__(
        self,
        executable: str = "redis-server",
        *,
        password: str | None = None,
        persistent: bool = False,
    ) -> None:
        self.executable = executable
        self.password = password
        self.persistent = persistent
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="backboneio-redis-")
        self.logfile = Path(self._dir.name, "redis.log")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        cmd = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "always",
            "--dir",
            self._dir.name,
            "--logfile",
            str(self.logfile),
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, cwd=self._dir.name, stdin=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.logfile.read_text() if self.logfile.exists() else ""
                    self.stop()
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
                time.sleep(0.05)
            finally:
                client.close()
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


#: Added to a cluster's settings module: memory backends move to the shared
#: Redis store, and the change log to Redis Streams, so that N processes
#: serve one set of models with one log.
_CLUSTER_SETTINGS = """

# -- added by backboneio_redis.testing.ServerCluster --
def _backboneio_cluster(g):
    if "PLUGINS" in g and "redis" not in g["PLUGINS"]:
        g["PLUGINS"] = [*g["PLUGINS"], "redis"]
    shared = {}
    for name, entry in (g.get("BACKENDS") or {}).items():
        if isinstance(entry, dict) and entry.get("store", "memory") == "memory":
            entry = {**entry, "store": "redis", "url": %(store)r, "prefix": %(prefix)r + name}
        shared[name] = entry
    if "BACKENDS" in g:
        g["BACKENDS"] = shared
    g.setdefault("REDIS_MANAGER_URL", %(log)r)
    g.setdefault("REDIS_MANAGER_CHANNEL", %(channel)r)


_backboneio_cluster(globals())
del _backboneio_cluster
"""


class ServerCluster:
    """N ``backboneio serve`` processes that behave as one server: the same
    settings, their memory backends moved to one Redis store and their change
    log to Redis Streams on ``redis_url``.

    It stands in for a :class:`~backboneio.testing.server.ServerProcess`:
    each read of :attr:`url` names the next process in turn, so the clients of
    a test are spread over them; :attr:`port`, :attr:`proc` and
    :attr:`directory` are the first process's; :attr:`log` and
    :meth:`wait_for_output` cover them all. ``server`` makes each process
    (``ServerProcess`` or a subclass) from the settings text and ``options``.
    """

    def __init__(
        self,
        settings: Any = None,
        *,
        redis_url: str,
        processes: int = 3,
        server: Any = None,
        **options: Any,
    ) -> None:
        from backboneio.testing.server import ServerProcess, settings_source

        if processes < 1:
            raise ValueError(f"a cluster needs at least one process, not {processes!r}")
        make = server or ServerProcess
        unique = uuid.uuid4().hex[:12]
        text = (settings_source(settings) or "") + _CLUSTER_SETTINGS % {
            "store": redis_url,
            "prefix": f"cluster:{unique}:",
            "log": redis_url,
            "channel": f"cluster-{unique}",
        }
        options.pop("port", None)  # each process has a port of its own
        self.processes = [make(text, **options) for _ in range(processes)]
        self.settings = text
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        with self._lock:
            turn = next(self._turn)
        return str(self.processes[turn % len(self.processes)].url)

    @property
    def urls(self) -> list[str]:
        return [str(p.url) for p in self.processes]

    @property
    def port(self) -> int:
        return int(self.processes[0].port)

    @property
    def proc(self) -> Any:
        return self.processes[0].proc

    @property
    def directory(self) -> Path:
        return Path(self.processes[0].directory)

    @property
    def output(self) -> list[str]:
        return [line for p in self.processes for line in p.output]

    @property
    def log(self) -> str:
        return "".join(
            f"--- process {i} (port {p.port}) ---\n{p.log}" for i, p in enumerate(self.processes)
        )

    def start(self) -> ServerCluster:
        try:
            for process in self.processes:
                process.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> int | None:
        codes = [process.stop() for process in self.processes]
        return codes[0]

    def restart(self) -> ServerCluster:
        self.stop()
        return self.start()

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output:
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no process printed {text!r}:\n{self.log}")
            time.sleep(0.05)

    def __enter__(self) -> ServerCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
