"""Fixtures: SQLite files in a temporary directory, and a throwaway PostgreSQL server.

The PostgreSQL server is Debian's binaries on a free loopback port with its
socket and data in a temporary directory, started once per session and always
stopped. ``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` user (``runuser``) in a directory handed to that user.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backboneio.testing.requires import binary, missing
from backboneio_sqlalchemy import dispose_all, store
from backboneio_sqlalchemy.testing import PostgresServer

PG_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/bin")
PG_INSTALL = "apt-get install postgresql"


def make_postgres_server() -> PostgresServer:
    server = PostgresServer(
        binary("initdb", PG_INSTALL, search=PG_SEARCH),
        binary("pg_ctl", PG_INSTALL, search=PG_SEARCH),
    )
    if server.as_root and not shutil.which("runuser"):
        missing("runuser (to run PostgreSQL as a non-root user)", "apt-get install util-linux")
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = make_postgres_server()
    try:
        server.init()
        server.start()
        yield server
    finally:
        # It may never have started, or a test that failed midway left it stopped.
        with contextlib.suppress(RuntimeError):
            server.stop()
        server.remove()


@pytest.fixture(autouse=True)
def _close_pools() -> Iterator[None]:
    yield
    dispose_all()


MakeStore = Callable[..., Any]


@pytest.fixture
def sqlite_make_store(tmp_path: Path) -> MakeStore:
    """make(id_attribute="id", max_limit=None) -> a store on a new SQLite file."""

    def make(id_attribute: str = "id", max_limit: int | None = None, **options: Any) -> Any:
        url = f"sqlite:///{tmp_path / uuid.uuid4().hex[:12]}.sqlite3"
        return store(url, "models", id_attribute=id_attribute, max_limit=max_limit, **options)

    return make


@pytest.fixture
def postgres_make_store(postgres: PostgresServer) -> MakeStore:
    """make(id_attribute="id", max_limit=None) -> a store on a new PostgreSQL table."""

    def make(id_attribute: str = "id", max_limit: int | None = None, **options: Any) -> Any:
        table = f"t_{uuid.uuid4().hex[:12]}"
        return store(postgres.url, table, id_attribute=id_attribute, max_limit=max_limit, **options)

    return make
