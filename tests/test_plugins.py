"""Every hook, exercised through backboneio-testplugin, installed through a real entry point.

One ``test_hook_<name>`` per hook in hookspecs.py; test_docs.py checks the list.
The test plugin is a test-only one (entry point group ``backboneio.tests``):
these servers turn it on with BACKBONEIO_TEST_PLUGINS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from backboneio import hookspecs
from backboneio.plugins import get_plugin_manager
from backboneio.settings import Settings

from tests.support.client import refusal

TEST_PLUGINS = {"BACKBONEIO_TEST_PLUGINS": "1"}

TESTPLUGIN = """
TESTPLUGIN = True
TESTPLUGIN_MANAGER = True
TESTPLUGIN_LOG = {log!r}
BACKENDS = {{
    "messages": {{}},
    "custom-event": {{}},
    "catalogue": {{"store": "fixed", "models": [{{"id": 1, "name": "fixed one"}}]}},
}}
"""


@pytest.fixture(scope="module")
def log_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("testplugin") / "hooks.jsonl"


@pytest.fixture(scope="module")
def server(log_file):
    from tests.support.server import ServerProcess

    with ServerProcess(TESTPLUGIN.format(log=str(log_file)), env=TEST_PLUGINS) as srv:
        yield srv


def logged(log_file: Path, hook: str) -> list[dict]:
    if not log_file.exists():
        return []
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [r for r in records if r["hook"] == hook]


def test_the_test_plugin_is_found_through_its_entry_point(monkeypatch):
    monkeypatch.setenv("BACKBONEIO_TEST_PLUGINS", "1")
    pm = get_plugin_manager()
    assert pm.has_plugin("testplugin")
    assert not get_plugin_manager(["backboneio-testplugin"]).has_plugin("nothing-else")


def test_plugins_setting_can_leave_an_installed_plugin_out(start_server, connect):
    srv = start_server('PLUGINS = []\nBACKENDS = {"messages": {}}', env=TEST_PLUGINS)
    # With the plugin disabled its auth hook never runs: this would be refused.
    client = connect(srv.url, "messages", auth={"refuse": "go away"})
    assert client.listen()["event"] == "backend"


def test_hook_register_settings(start_server, connect, log_file):
    # TESTPLUGIN is not a core setting; without the plugin it is refused.
    srv = start_server(TESTPLUGIN.format(log=str(log_file)), env=TEST_PLUGINS)
    assert connect(srv.url, "messages").listen()["event"] == "backend"
    result = subprocess.run(
        [sys.executable, "-m", "backboneio", "plugins", "--settings", "no_plugin_settings"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent / "apps",
        env={**os.environ, **TEST_PLUGINS},
    )
    assert result.returncode == 2
    assert "Unknown setting TESTPLUGIN" in result.stderr


def test_hook_register_stores(server, connect):
    client = connect(server.url, "catalogue")
    assert client.ok("read") == [{"id": 1, "name": "fixed one"}]
    error, _ = client.sync("create", {"name": "new"})
    assert error["error"] == {
        "name": "Forbidden",
        "message": "catalogue is read-only",
        "status": 403,
    }


def test_hook_prepare_backend(server, connect):
    created = connect(server.url, "messages").ok("create", {"text": "x"})
    assert created["stamped_by"] == "testplugin"


def test_hook_event_name(server, connect):
    assert connect(server.url, "custom-event").listen()["event"] == "plugin-event"
    assert connect(server.url, "messages").listen()["event"] == "backend"


def test_hook_authenticate(server, connect):
    client = connect(server.url, "messages", auth={"user": "ada"})
    assert client.call("whoami") == "ada"
    assert connect(server.url, "messages").call("whoami") is None


def test_authenticate_can_refuse_with_a_reason(server):
    assert refusal(server.url, "messages", auth={"refuse": "not today"}) == {"message": "not today"}


def test_an_identity_that_expires_is_disconnected_and_hears_nothing_after(server, connect):
    writer = connect(server.url, "messages", auth={"user": "bob"})
    brief = connect(server.url, "messages", auth={"user": "eve", "expires_in": 1.0})
    assert brief.call("whoami") == "eve"
    disconnected = threading.Event()
    brief.sio.on("disconnect", lambda *reason: disconnected.set(), namespace="/messages")
    assert disconnected.wait(10), "the server kept a connection whose identity expired"
    writer.ok("create", {"text": "after eve's credentials ran out"})
    assert brief.heard_nothing()


def test_an_identity_already_expired_is_refused(server):
    reason = refusal(server.url, "messages", auth={"user": "eve", "expires_in": -5})
    assert reason == {"message": "Credentials expired"}


def test_a_crashing_authenticate_refuses_without_details(server):
    reason = refusal(server.url, "messages", auth={"crash": True})
    assert reason == {"message": "Authentication failed"}


def test_hook_authorize(server, connect):
    client, other = connect(server.url, "messages"), connect(server.url, "messages")
    other.listen()
    created = client.ok("create", {"text": "keep", "protected": True})
    assert other.next_synced()[0] == "create"
    error, result = client.sync("delete", {"id": created["id"], "protected": True})
    assert result is None
    assert error["error"]["name"] == "Forbidden"
    assert other.heard_nothing()
    assert client.ok("read", {"id": created["id"]}) == created


def test_hook_client_manager(server, connect, log_file):
    connect(server.url, "messages").ok("create", {"text": "counted"})
    assert any(r["namespace"] == "/messages" for r in logged(log_file, "client_manager"))


def test_hook_configure_server(server, connect):
    # "whoami" is not part of the protocol: the plugin registered it.
    assert connect(server.url, "messages", auth={"user": "grace"}).call("whoami") == "grace"


def test_hook_change_log():
    from backboneio.app import build_hub
    from backboneio.changelog import MemoryChangeLog
    from backboneio.plugins import load_plugins

    class CountingLog(MemoryChangeLog):
        appended = 0

        def append(self, *args, **kwargs):
            CountingLog.appended += 1
            return super().append(*args, **kwargs)

    class Plugin:
        @hookspecs.hookimpl
        def change_log(self, settings, hub):
            return CountingLog()

    settings = Settings({"BACKENDS": {"notes": {}}, "PLUGINS": []})
    hub = build_hub(settings, plugins=load_plugins(settings, extra=(Plugin(),)))
    assert isinstance(hub.log, CountingLog)
    hub.backends["notes"].emit("created", {"id": 1})
    assert CountingLog.appended == 1
    assert hub.log.head("notes", None).seq == 1


def test_hook_after_write(server, connect, log_file):
    client = connect(server.url, "messages")
    created = client.ok("create", {"text": "noted"})
    client.ok("delete", {"id": created["id"]})
    client.ok("read")
    methods = [r["method"] for r in logged(log_file, "after_write") if r["backend"] == "messages"]
    assert methods[-2:] == ["create", "delete"]


def test_hook_authorize_broadcast(server, connect):
    owner = connect(server.url, "messages", auth={"user": "ada"})
    stranger = connect(server.url, "messages", auth={"user": "eve"})
    writer = connect(server.url, "messages", auth={"user": "bob"})
    secret = writer.ok("create", {"secret": True, "owner": "ada", "text": "for ada"})
    assert owner.next_synced() == ("create", secret)
    assert stranger.heard_nothing()
    public = writer.ok("create", {"text": "for all"})
    assert stranger.next_synced() == ("create", public)
    assert owner.next_synced() == ("create", public)


def test_every_hook_has_a_test_here():
    specs = {
        name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "backboneio_spec")
    }
    tests = {name.removeprefix("test_hook_") for name in globals() if name.startswith("test_hook_")}
    assert specs <= tests, f"hooks without a test_hook_<name>: {sorted(specs - tests)}"


def test_expires_at_beyond_any_real_deadline_sets_no_timer():
    from backboneio.hub import expires_at

    class Identity:
        def __init__(self, when):
            self.expires_at = when

    assert expires_at(Identity(10**400)) is None
    assert expires_at(Identity(True)) is None
    assert expires_at(Identity("1700000000")) is None
    assert expires_at(Identity(1_700_000_000)) == 1_700_000_000.0
    assert expires_at("no attribute") is None


# A broken third-party plugin, really installed (pip, into a folder of its own
# that the commands below get on PYTHONPATH): one entry point per way of being
# broken. None of them may break `backboneio plugins` or `serve`.
BROKEN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "backboneio-broken"
version = "0.0.1"

[project.entry-points.backboneio]
misspelled = "backboneio_broken.misspelled"
wrong-args = "backboneio_broken.wrong_args"
no-import = "backboneio_broken.no_import"

[tool.setuptools]
packages = ["backboneio_broken"]
"""

BROKEN_MODULES = {
    "__init__.py": "",
    "misspelled.py": (
        "from backboneio import hookimpl\n\n\n"
        "@hookimpl\n"
        "def prepare_backends(name, backend, config, settings):\n"
        "    backend.use(lambda req, res, next: next())\n"
    ),
    "wrong_args.py": (
        "from backboneio import hookimpl\n\n\n"
        "@hookimpl\n"
        "def authenticate(environ, token):\n"
        "    return token\n"
    ),
    "no_import.py": "import backboneio_no_such_dependency  # noqa: F401\n",
}


@pytest.fixture(scope="module")
def broken_plugins(tmp_path_factory) -> dict[str, str]:
    """The environment under which backboneio-broken is installed."""
    source = tmp_path_factory.mktemp("broken-src")
    (source / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    package = source / "backboneio_broken"
    package.mkdir()
    for name, text in BROKEN_MODULES.items():
        (package / name).write_text(text)
    target = tmp_path_factory.mktemp("broken-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return {"PYTHONPATH": str(target)}


def backboneio(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "BACKBONEIO_TEST_PLUGINS"}
    return subprocess.run(
        [sys.executable, "-m", "backboneio", *args],
        capture_output=True,
        text=True,
        env={**environ, **env},
        cwd=cwd,
        timeout=60,
    )


def line_about(stderr: str, plugin: str) -> str:
    lines = [line for line in stderr.splitlines() if f"'{plugin}'" in line]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_misspelled_hook_is_one_line_and_plugins_lists_the_others(broken_plugins, tmp_path):
    result = backboneio("plugins", "--format", "json", env=broken_plugins, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    listed = {p["name"] for p in json.loads(result.stdout)}
    assert "timestamps" in listed  # the working plugins are all still there
    assert not listed & {"misspelled", "wrong-args", "no-import"}
    line = line_about(result.stderr, "misspelled")
    assert "prepare_backends" in line
    assert "did you mean prepare_backend?" in line
    assert "authenticate" in line_about(result.stderr, "wrong-args")
    assert "token" in line_about(result.stderr, "wrong-args")
    assert "backboneio_no_such_dependency" in line_about(result.stderr, "no-import")
    assert len(result.stderr.splitlines()) == 3, result.stderr


def test_the_plugins_table_survives_a_broken_plugin_named_in_plugins(broken_plugins, tmp_path):
    (tmp_path / "named.py").write_text("PLUGINS = ['misspelled', 'timestamps']\n")
    result = backboneio("plugins", "--settings", "named.py", env=broken_plugins, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["name", "timestamps"]
    assert "did you mean prepare_backend?" in line_about(result.stderr, "misspelled")
    assert "Traceback" not in result.stderr


def test_serve_skips_a_misspelled_plugin_with_one_line(broken_plugins, start_server, connect):
    srv = start_server("BACKENDS = {'messages': {}}", env=broken_plugins)
    assert connect(srv.url, "messages").ok("create", {"text": "served"})["text"] == "served"
    line = line_about(srv.log, "misspelled")
    assert "ERROR" in line
    assert "did you mean prepare_backend?" in line
    assert "Traceback" not in srv.log


def test_serve_refuses_a_misspelled_plugin_the_settings_enable(broken_plugins, tmp_path):
    (tmp_path / "enabled.py").write_text("PLUGINS = ['misspelled']\n")
    result = backboneio("serve", "--settings", "enabled", env=broken_plugins, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "backboneio: configuration error: Plugin 'misspelled': hook prepare_backends is not "
        "a backboneio hook (did you mean prepare_backend?)"
    ]


def test_a_misspelled_hook_on_a_plugin_object_is_a_configuration_error():
    from backboneio import ConfigurationError, hookimpl

    class Plugin:
        @hookimpl
        def authorise(self, action):
            return None

    with pytest.raises(
        ConfigurationError, match=r"authorise is not a backboneio hook \(did you mean authorize\?\)"
    ):
        get_plugin_manager([], extra=[Plugin()])


def test_the_test_plugin_is_hidden_unless_asked_for(tmp_path):
    listed = backboneio("plugins", "--format", "json", env={}, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "testplugin" not in {p["name"] for p in json.loads(listed.stdout)}
    (tmp_path / "missing.py").write_text("PLUGINS = ['nope']\n")
    missing = backboneio("plugins", "--settings", "missing", env={}, cwd=tmp_path)
    assert "installed plugins:" in missing.stderr
    assert "testplugin" not in missing.stderr
    (tmp_path / "named.py").write_text("PLUGINS = ['testplugin']\n")
    named = backboneio("plugins", "--settings", "named", "--format", "json", env={}, cwd=tmp_path)
    assert [p["name"] for p in json.loads(named.stdout)] == ["testplugin"]
    shown = backboneio(
        "plugins", "--format", "json", env={"BACKBONEIO_TEST_PLUGINS": "1"}, cwd=tmp_path
    )
    assert "testplugin" in {p["name"] for p in json.loads(shown.stdout)}
