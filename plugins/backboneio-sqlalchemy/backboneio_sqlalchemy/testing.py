"""A throwaway PostgreSQL cluster for tests and benchmarks of code using this plugin.

    from backboneio_sqlalchemy.testing import PostgresServer

    server = PostgresServer(initdb, pg_ctl)   # paths of Debian's binaries
    server.init(); server.start()
    try:
        ...  # server.url
    finally:
        server.stop(); server.remove()

Data and socket live in a temporary directory; the server listens on a free
loopback port. ``initdb`` refuses to run as root, so as root the cluster runs
as the ``postgres`` user (``runuser``) in a directory handed to that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/bin")


def find_binary(name: str) -> str | None:
    """``name`` on PATH or in Debian's PostgreSQL folders, or None."""
    found = shutil.which(name)
    if found:
        return found
    for folder in SEARCH:
        for candidate in sorted(glob.glob(os.path.join(folder, name))):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster of our own: ``start()``, ``stop()``, ``url``."""

    user = "backboneio"

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb = initdb
        self.pg_ctl = pg_ctl
        self.as_root = os.geteuid() == 0
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
