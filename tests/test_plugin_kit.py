"""The plugin author's kit (issue 13): ``backboneio new-plugin`` and the pytest plugin.

The big test writes a skeleton, installs the core and the skeleton into a new
venv and runs the skeleton's own tests there, from its own folder: nothing of
this repository (tests/, conftest.py, the plugins under plugins/) is in reach,
only backboneio as pip installs it and its pytest plugin.

The new venv gets its third-party packages (pytest, python-socketio, eventlet...)
from this environment, through a folder of links that leaves out every
``backboneio*`` distribution, so pip installs nothing but the two packages
(``--no-deps``). Building them needs setuptools: taken from this environment
when it can build wheels, else fetched by pip's build isolation (the only
download, and then the test is marked ``pypi``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from backboneio import cli
from backboneio.templates import new_plugin, plugin_names

from tests.support.requires import missing
from tests.support.server import ROOT


def _can_build_wheels_here() -> bool:
    """setuptools that builds wheels by itself (70.1+) or with the wheel package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from importlib.metadata import version

    major, minor = (int(part) for part in version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


BUILD_HERE = _can_build_wheels_here()
# Marked pypi only when it downloads (setuptools, for pip's isolated builds).
PYPI = pytest.mark.usefixtures() if BUILD_HERE else pytest.mark.pypi
PIP_TIMEOUT = 180
OFFLINE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found",
)


# -- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dist", "module", "entry_point", "prefix"),
    [
        ("audit", "backboneio-audit", "backboneio_audit", "audit", "AUDIT_"),
        ("word-count", "backboneio-word-count", "backboneio_word_count", "word-count",
         "WORD_COUNT_"),
        ("word_count", "backboneio-word-count", "backboneio_word_count", "word-count",
         "WORD_COUNT_"),
        ("backboneio-geo2", "backboneio-geo2", "backboneio_geo2", "geo2", "GEO2_"),
    ],
)  # fmt: skip
def test_names_made_from_a_plugin_name(name, dist, module, entry_point, prefix):
    names = plugin_names(name)
    assert (names.dist, names.module, names.entry_point, names.prefix) == (
        dist,
        module,
        entry_point,
        prefix,
    )
    assert names.module.isidentifier()


@pytest.mark.parametrize(
    "name",
    ["", "Audit", "2fa", "-audit", "audit-", "word--count", "word count", "ünï", "a.b",
     "backboneio", "backboneio-", "x" * 41, "import/../x"],
)  # fmt: skip
def test_invalid_names_are_refused(name):
    with pytest.raises(ValueError, match="is not a valid plugin name"):
        plugin_names(name)


def test_the_command_refuses_a_bad_name_in_one_line(tmp_path, capsys):
    assert cli.main(["new-plugin", "Bad Name", "--dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "is not a valid plugin name" in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_command_refuses_an_existing_folder_in_one_line(tmp_path, capsys):
    (tmp_path / "backboneio-audit").mkdir()
    (tmp_path / "backboneio-audit" / "mine.txt").write_text("keep me")
    assert cli.main(["new-plugin", "audit", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err, err
    assert [p.name for p in (tmp_path / "backboneio-audit").iterdir()] == ["mine.txt"]


def test_the_skeleton_is_complete(tmp_path, capsys):
    assert cli.main(["new-plugin", "audit", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "backboneio-audit"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["README.md", "backboneio_audit.py", "pyproject.toml", "tests/test_audit.py"]
    assert "pip install -e" in capsys.readouterr().out
    text = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    assert not re.search(r"\{\{\w+\}\}", text), "a template placeholder was left"
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["backboneio"] == {"audit": "backboneio_audit"}
    assert project["dependencies"] == ["backboneio>=0.1"]
    test_extra = project["optional-dependencies"]["test"]
    assert any(dep.startswith("backboneio[test]") for dep in test_extra)
    module = (folder / "backboneio_audit.py").read_text()
    assert "AUDIT_BACKENDS" in module and "@hookimpl" in module


def test_the_guide_shows_the_pyproject_the_command_writes(tmp_path):
    guide = (ROOT / "docs" / "plugin_guide.md").read_text()
    folder, _ = new_plugin("word-count", tmp_path)
    assert f"```toml\n{(folder / 'pyproject.toml').read_text()}```" in guide


@pytest.mark.parametrize("name", ["audit", "a" * 40])
def test_the_skeleton_is_lint_clean_and_formatted(tmp_path, name):
    """With ruff's defaults (88 columns), whatever the name's length."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        missing("ruff", "pip install -r requirements-test.txt")
    new_plugin(name, tmp_path)
    for check in (["check", "--select", "E,F,W,I,B,UP"], ["format", "--check", "--diff"]):
        done = subprocess.run(
            [ruff, *check, "--isolated", str(tmp_path)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


# -- the skeleton in a new venv -------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus what would let the checkout or this venv leak in."""
    env = {**os.environ, **extra}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONHOME"):
        env.pop(name, None)
    return env


def link_dependencies(into: Path) -> Path:
    """A folder linking this environment's packages, except backboneio and its plugins."""
    into.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name.startswith(("backboneio", "__editable__", "_virtualenv")) or name.endswith(".pth"):
            continue
        if name == "__pycache__":
            continue
        (into / entry.name).symlink_to(entry)
    return into


def copy_core(into: Path) -> Path:
    """The core's sources, so pip builds nothing inside the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    into.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, into / name)
    shutil.copytree(ROOT / "core", into / "core", ignore=ignore)
    return into


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / "python"


def run(cmd: list[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_env(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1"),
        timeout=timeout,
    )


@PYPI
@pytest.mark.skipif(os.name == "nt", reason="the venv layout below is POSIX's")
def test_the_skeleton_passes_its_own_tests_in_a_new_venv(tmp_path):
    venv = tmp_path / "venv"
    done = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    python = venv_python(venv)
    purelib = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=tmp_path,
        timeout=30,
    ).stdout.strip()
    deps = link_dependencies(tmp_path / "deps")
    Path(purelib, "_backboneio_kit_deps.pth").write_text(f"{deps}\n")

    def pip_install(*what: object) -> None:
        pip = [python, "-m", "pip", "install", "--no-deps", "--no-input"]
        if BUILD_HERE:
            pip.append("--no-build-isolation")
        done = run([*pip, *what], cwd=tmp_path, timeout=PIP_TIMEOUT)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            if not BUILD_HERE and any(word in output for word in OFFLINE):
                missing("the package index (PyPI), for setuptools", "network access to PyPI")
            pytest.fail("pip install failed:\n" + output[-4000:], pytrace=False)

    # The core as a wheel (its templates must be in it), then the skeleton it
    # writes, installed as its README says.
    pip_install(copy_core(tmp_path / "src" / "backboneio"))
    done = run(
        [python, "-m", "backboneio", "new-plugin", "word-count", "--dir", tmp_path / "src"],
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    skeleton = tmp_path / "src" / "backboneio-word-count"
    pip_install("-e", skeleton)

    probe = """
import importlib.metadata as md, importlib.util, json, backboneio, backboneio_word_count
print(json.dumps({
    "backboneio": backboneio.__file__,
    "plugin": backboneio_word_count.__file__,
    "plugins": sorted(ep.name for ep in md.entry_points(group="backboneio")),
    "pytest11": sorted(ep.value for ep in md.entry_points(group="pytest11")),
    "tests": importlib.util.find_spec("tests") is not None,
}))
"""
    done = run([python, "-c", probe], cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    where = json.loads(done.stdout)
    # The installed core, the skeleton its only plugin, no tests of this repo in reach.
    assert where["backboneio"].startswith(str(venv)), where
    assert where["plugin"].startswith(str(skeleton)), where
    assert where["plugins"] == ["word-count"], where
    assert "backboneio.testing.pytest_plugin" in where["pytest11"], where
    assert not where["tests"], where

    done = run([python, "-m", "pytest", "-p", "no:cacheprovider", "-v"], cwd=skeleton, timeout=240)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "2 passed" in report, report
    assert f"rootdir: {skeleton}" in report, report


def test_without_the_test_extra_pytest_runs_and_the_client_fixture_says_what_to_install(
    tmp_path,
):
    """pytest loads the plugin in every environment with backboneio: it must never break it."""
    blocked = tmp_path / "blocked" / "websocket"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('websocket-client is not installed')\n")
    (tmp_path / "test_user.py").write_text(
        "def test_unrelated():\n"
        "    assert True\n\n\n"
        "def test_client(backboneio_client):\n"
        "    backboneio_client('test')\n"
    )
    env = {**clean_env(), "PYTHONPATH": str(tmp_path / "blocked")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    report = done.stdout + done.stderr
    assert "1 passed, 1 error" in report, report  # the fixture's setup fails
    assert 'pip install "backboneio[test]"' in report, report
    assert "During handling" not in report, report
    assert "backboneio server" not in report, report  # it failed before starting one


def test_a_failing_test_reports_the_output_of_its_servers(tmp_path):
    (tmp_path / "test_user.py").write_text(
        "def test_fails(backboneio_server):\n    assert backboneio_server.url == 'elsewhere'\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    report = done.stdout + done.stderr
    assert "1 failed" in report, report
    assert "backboneio server http://127.0.0.1:" in report, report
    assert "backboneio serving on" in report, report  # what the server printed


def test_the_test_client_hears_notifications_in_wire_order(backboneio_server):
    # python-socketio's client handles each message in a thread of its own;
    # the kit's client must not swap neighbours (see WireOrderClient).
    import threading

    from backboneio.testing.client import BackendClient

    listener = BackendClient(backboneio_server.url, "test")
    writers = [BackendClient(backboneio_server.url, "test") for _ in range(4)]
    try:
        listener.listen()

        def write(writer):
            for n in range(250):
                writer.ok("create", {"n": n})

        threads = [threading.Thread(target=write, args=(w,)) for w in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        heard = [listener.next_synced() for _ in range(1000)]
        assert len(heard) == 1000
        assert [p["seq"] for p in listener.positions] == list(range(1, 1001))
        # Every message went through the one inbox: if python-engineio stops
        # dispatching messages through start_background_task, this says so.
        assert listener.sio.eio.in_order >= 1000
    finally:
        for client in [listener, *writers]:
            client.close()
