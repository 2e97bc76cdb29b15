"""Fixtures: SQLite files in a temporary directory, and a throwaway PostgreSQL server.

The PostgreSQL server is Debian's binaries on a free loopback port with its
socket and data in a temporary directory, started once per session and always
stopped. ``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` user (``runuser``) in a directory handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backboneio_sqlalchemy import dispose_all, store

from tests.support.requires import binary, missing
from tests.support.server import free_port

PG_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/bin")
PG_INSTALL = "apt-get install postgresql"


class PostgresServer:
    """A PostgreSQL cluster of our own: ``start()``, ``stop()``, ``url``."""

    user = "backboneio"

    def __init__(self) -> None:
        self.initdb = binary("initdb", PG_INSTALL, search=PG_SEARCH)
        self.pg_ctl = binary("pg_ctl", PG_INSTALL, search=PG_SEARCH)
        self.as_root = os.geteuid() == 0
        if self.as_root and not shutil.which("runuser"):
            missing("runuser (to run PostgreSQL as a non-root user)", "apt-get install util-linux")
        self.dir = Path(tempfile.mkdtemp(prefix="backboneio-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/postgres"

    def run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, cwd=self.dir)
        if done.returncode != 0:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise RuntimeError(f"{command[0]} failed:\n{done.stdout}{done.stderr}{log}")

    def init(self) -> None:
        self.run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self.run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
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
