"""Module-scoped real database servers for wire tests that run on every store.

Import the fixtures into a test module (``from tests.support.databases import
postgres_url, redis_url``) to start each server once per module that asks.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest

from tests.support.requires import binary, missing

PG_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/bin")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    from backboneio_sqlalchemy.testing import PostgresServer

    hint = "apt-get install postgresql"
    server = PostgresServer(
        binary("initdb", hint, search=PG_SEARCH), binary("pg_ctl", hint, search=PG_SEARCH)
    )
    if server.as_root and not shutil.which("runuser"):
        missing("runuser (to run PostgreSQL as a non-root user)", "apt-get install util-linux")
    try:
        server.init()
        server.start()
        yield server.url
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        server.remove()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    from backboneio_redis.testing import RedisServer

    server = RedisServer(binary("redis-server", "apt-get install redis-server"))
    try:
        yield server.start().url
    finally:
        server.close()
