"""Module-scoped real database servers for wire tests that run on every store.

Import the fixtures into a test module (``from tests.support.databases import
postgres_url, redis_url``) to start each server once per module that asks.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

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


#: The parameters of a module-scoped ``server`` fixture that runs on every store.
EVERY_STORE = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]


def store_entry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> dict[str, Any]:
    """A BACKENDS entry for the store ``request.param`` names, a fresh one each call
    (its own SQLite file, its own Redis key prefix; PostgreSQL: a table per backend)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp(name) / f"{name}.sqlite3"
        return {"store": "sqlalchemy", "url": f"sqlite:///{path}"}
    if request.param == "postgres":
        return {"store": "sqlalchemy", "url": request.getfixturevalue("postgres_url")}
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return {"store": "redis", "url": url, "prefix": f"{name}:{uuid.uuid4().hex}"}
    return {"store": "memory"}
