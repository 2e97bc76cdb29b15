"""The docs site builds with --strict, its code samples compile and import,
and the tutorial's programs run as printed."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


def blocks(path: Path, language: str = "python") -> list[tuple[str, str]]:
    """(attributes, code) of each fenced block in ``language``."""
    return [(m[2], m[3]) for m in FENCE.finditer(path.read_text()) if m[1] == language]


def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the config's paths must not depend on where it runs
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    site = tmp_path / "site"
    assert "did you mean BACKENDS?" in (site / "getting-started" / "index.html").read_text()
    # The changelog page includes CHANGELOG.md itself.
    changelog = (site / "changelog" / "index.html").read_text()
    assert "Unreleased" in changelog
    assert "--8&lt;--" not in changelog and "--8<--" not in changelog


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_samples_compile_and_their_backboneio_imports_exist(page):
    for _, code in blocks(page):
        tree = compile(code, str(page), "exec", ast.PyCF_ONLY_AST)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules, names = [node.module], [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                modules, names = [a.name for a in node.names], []
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                # The core always; plugins when installed; the samples' own
                # modules (myapp, backboneio_shelf...) are not checked.
                if top != "backboneio" and importlib.util.find_spec(top) is None:
                    continue
                imported = importlib.import_module(module)
                for name in names:
                    assert hasattr(imported, name) or importlib.util.find_spec(
                        f"{module}.{name}"
                    ), f"{page.name}: {module} has no {name}"


def tutorial_files(which: int) -> dict[str, str]:
    """The tutorial's files: each one's first version (which=0) or last (-1)."""
    found: dict[str, list[str]] = {}
    for language in ("python", "html"):
        for attributes, code in blocks(DOCS / "tutorial.md", language):
            title = re.search(r'title="([^"]+)"', attributes)
            if title:
                found.setdefault(title[1], []).append(code)
    return {name: versions[which] for name, versions in found.items()}


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("the tutorial's server did not start")


def run(folder: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_tutorial_first_server_and_client(tmp_path):
    for name, code in tutorial_files(0).items():
        (tmp_path / name).write_text(code)
    port = free_port()
    env = {**os.environ, "NOTES_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "backboneio", "serve", "--settings", "settings.py",
         "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port, server)
        assert "added {'text': 'buy milk'" in run(tmp_path, env, "client.py", "add", "buy", "milk")
        assert "'text': 'buy milk'" in run(tmp_path, env, "client.py", "list")
    finally:
        server.terminate()
        server.wait(10)


def test_the_tutorial_finished_app(tmp_path):
    for name, code in tutorial_files(-1).items():
        (tmp_path / name).write_text(code)
    port = free_port()
    env = {
        **os.environ,
        "NOTES_SECRET": "s" * 40,
        "NOTES_PORT": str(port),
        "NOTES_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("NOTES_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "app.py"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    watcher = None
    try:
        wait_for_port(port, server)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            assert "Backbone.io.connect()" in response.read().decode()
        watcher = subprocess.Popen(
            [sys.executable, "client.py", "watch"], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "watching"
        assert "Log in to create" in run(tmp_path, env, "client.py", "add", "anonymous")
        token = run(tmp_path, env, "make_token.py", "ann").strip()
        signed_in = {**env, "NOTES_TOKEN": token}
        assert "A note needs some text" in run(tmp_path, signed_in, "client.py", "add", " ")
        added = run(tmp_path, signed_in, "client.py", "add", "hello")
        assert "'author': 'ann'" in added
        heard = watcher.stdout.readline()
        assert heard.startswith("synced create") and "'text': 'hello'" in heard
    finally:
        for proc in (watcher, server):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
