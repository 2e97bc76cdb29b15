"""A real redis-server per test session, on a free loopback port, always stopped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from backboneio.testing.requires import binary
from backboneio_redis import RedisStore, make_store
from backboneio_redis.testing import RedisServer

INSTALL_HINT = "apt-get install redis-server"


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
