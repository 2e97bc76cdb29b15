"""A real redis-server per test session, on a free loopback port, always stopped."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from backboneio_redis import RedisStore, make_store

from tests.support.requires import binary
from tests.support.server import free_port

INSTALL_HINT = "apt-get install redis-server"


class RedisServer:
    """``redis-server`` without persistence in a temporary directory.

    ``stop()`` and ``start()`` keep the port, so tests can take Redis away
    and bring it back where clients expect it.
    """

    def __init__(self, executable: str, *, password: str | None = None) -> None:
        self.executable = executable
        self.password = password
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
            "no",
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

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return binary("redis-server", INSTALL_HINT)


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def own_redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """A password-protected Redis for one test, which may stop and restart it."""
    server = RedisServer(redis_binary, password=f"pw-{uuid.uuid4().hex}")
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def redis_store(redis_server: RedisServer) -> Iterator[RedisStore]:
    store = make_store(redis_server.url, prefix=f"test:{uuid.uuid4().hex}", backend="messages")
    try:
        yield store
    finally:
        store.clear()
        store.client.close()
