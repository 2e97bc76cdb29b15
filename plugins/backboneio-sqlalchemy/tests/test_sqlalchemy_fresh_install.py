"""The README's PostgreSQL URLs on a fresh, unpinned install (issue 14, item 1).

The suite's own venv is pinned by requirements-test.txt; users get whatever
PyPI has today. So this test makes a new venv, installs the core and the
plugin with its ``[postgresql]`` extra from copies of this checkout (no pins,
dependencies from the package index), serves the URL forms the README and
docs/stores-sqlalchemy.md show with that venv's ``backboneio serve``, and
does a create and a read on each over a real Socket.IO client.

Everything it makes (venv, pip cache, source copies) is under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from backboneio.testing.client import BackendClient
from backboneio.testing.requires import missing
from backboneio.testing.server import ServerProcess

from tests.support.server import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.pypi]

PLUGIN = ROOT / "plugins" / "backboneio-sqlalchemy"
PIP_TIMEOUT = 150
# pip's words when it cannot reach the index, as opposed to a broken package.
OFFLINE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found",
)
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "tests")


def copy_sources(into: Path) -> tuple[Path, Path]:
    """Copies of the core's and the plugin's sources, so pip builds nothing in the checkout."""
    core = into / "backboneio"
    core.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, core / name)
    for extra in ROOT.glob("LICENSE*"):
        shutil.copy2(extra, core / extra.name)
    shutil.copytree(ROOT / "core", core / "core", ignore=IGNORE)
    plugin = into / "backboneio-sqlalchemy"
    shutil.copytree(PLUGIN, plugin, ignore=IGNORE)
    return core, plugin


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the suite's own venv in."""
    env = {**os.environ, **extra}
    for name in ("PIP_CONSTRAINT", "PIP_REQUIREMENT", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def fresh_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    core, plugin = copy_sources(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    env = clean_env(
        PIP_CACHE_DIR=str(tmp_path / "pip-cache"),
        PIP_NO_INPUT="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", str(core), f"{plugin}[postgresql]"],
        capture_output=True,
        text=True,
        env=env,
        timeout=PIP_TIMEOUT,
    )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(word in output for word in OFFLINE):
            missing("the package index (PyPI)", "network access to PyPI:\n" + output[-2000:])
        pytest.fail("pip install failed:\n" + output[-4000:], pytrace=False)
    return venv


def installed(venv: Path) -> dict[str, Any]:
    """Where the new venv's packages come from, and which drivers it has."""
    probe = """
import importlib.util, json, backboneio, backboneio_sqlalchemy, sqlalchemy
print(json.dumps({
    "backboneio": backboneio.__file__,
    "plugin": backboneio_sqlalchemy.__file__,
    "sqlalchemy": sqlalchemy.__version__,
    "psycopg2": importlib.util.find_spec("psycopg2") is not None,
    "psycopg": importlib.util.find_spec("psycopg") is not None,
}))
"""
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=venv,
        env=clean_env(),
    )
    return json.loads(done.stdout)


class FreshServer(ServerProcess):
    """``backboneio serve`` from the new venv's console script."""

    def __init__(self, venv: Path, settings: str) -> None:
        # An inherited PYTHONPATH would serve the checkout instead of the install.
        super().__init__(settings, env={"PYTHONPATH": ""})
        self.venv = venv

    def command(self) -> list[str]:
        serve = [str(self.venv / "bin" / "backboneio"), "serve", "--settings", self.module]
        return [*serve, "--host", "127.0.0.1", "--port", str(self.port)]


def test_the_documented_postgres_urls_work_on_a_fresh_unpinned_install(
    tmp_path: Path, postgres: Any
) -> None:
    venv = fresh_venv(tmp_path)
    where = installed(venv)
    # The new venv really is the install a user gets: its own packages, and
    # psycopg2 from the extra, without psycopg 3 (what SQLAlchemy 2.1 would
    # pick for a URL naming no driver).
    assert where["backboneio"].startswith(str(venv)), where
    assert where["plugin"].startswith(str(venv)), where
    assert where["psycopg2"] and not where["psycopg"], where

    user, port = postgres.user, postgres.port
    suffix = uuid.uuid4().hex[:8]
    urls = {
        # README.md: postgresql://localhost/app
        "readme": f"postgresql://{user}@localhost:{port}/postgres",
        # Heroku-style DATABASE_URL
        "heroku": f"postgres://{user}@127.0.0.1:{port}/postgres",
        # docs/stores-sqlalchemy.md: the driver named, over the Unix socket (app@/app)
        "socket": f"postgresql+psycopg2://{user}@/postgres?host={postgres.dir}&port={port}",
        "socket_plain": f"postgresql://{user}@/postgres?host={postgres.dir}&port={port}",
    }
    backends = {
        name: {"store": "sqlalchemy", "url": url, "table": f"{name}_{suffix}"}
        for name, url in urls.items()
    }
    with FreshServer(venv, f"BACKENDS = {backends!r}\n") as server:
        for name in urls:
            with BackendClient(server.url, name) as writer, BackendClient(server.url, name) as peer:
                created = writer.ok("create", {"title": f"via {name}"})
                assert created["title"] == f"via {name}" and "id" in created
                assert peer.ok("read") == [created]
                assert peer.ok("read", {"id": created["id"]}) == created
        assert "Traceback" not in server.log, server.log

    # The models are rows of PostgreSQL tables, not of some other store.
    conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres")
    try:
        with conn.cursor() as cur:
            for name in urls:
                cur.execute(f"SELECT body->>'title' FROM \"{name}_{suffix}\"")
                assert cur.fetchall() == [(f"via {name}",)]
    finally:
        conn.close()
