"""Settings errors stop start-up with a message naming the culprit; the CLI around them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from backboneio import ConfigurationError
from backboneio.app import build_server
from backboneio.settings import Settings

from tests.support.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str,
    settings: str | None = None,
    cwd: Path,
    timeout: float = 30,
    env: dict[str, str] | None = None,
):
    if settings is not None:
        (cwd / "clisettings.py").write_text(textwrap.dedent(settings))
        args = (*args, "--settings", "clisettings")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "backboneio", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def first_line_with(proc: subprocess.Popen[str], text: str, limit: int = 50) -> str:
    """The first output line holding ``text`` (start-up may log warnings before it)."""
    assert proc.stdout is not None
    for _ in range(limit):
        line = proc.stdout.readline()
        if text in line or not line:
            return line
    return ""


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("EVNT = 'typo'", "Unknown setting EVNT"),
        ("DEBUG = 'yes'", "Setting DEBUG must be True or False"),
        ("PORT = '80'", "Setting PORT must be an integer"),
        ("BACKENDS = ['messages']", "Setting BACKENDS must be a dict"),
        ("BACKENDS = {'a/b': {}}", "Backend name 'a/b'"),
        ("BACKENDS = {'m': {'store': 'mongo'}}", "uses store 'mongo', which no enabled plugin"),
        ("BACKENDS = {'m': {'store': 'memory', 'url': 'x'}}", "unknown key(s) url"),
        ("BACKENDS = {'m': {'middleware': ['nowhere.mw']}}", "cannot import 'nowhere'"),
        ("BACKENDS = {'m': {'middleware': ['apps.middleware.nope']}}", "has no 'nope'"),
        ("BACKENDS = {'m': {'middleware': ['justaname']}}", "not a dotted path"),
        ("BACKENDS = {'m': {'login_required': ['fly']}}", "login_required"),
        ("BACKENDS = {'m': {'id_attribute': ''}}", "id_attribute"),
        ("PLUGINS = ['not-installed']", "PLUGINS names not-installed, which is not installed"),
        ("CORS_ALLOWED_ORIGINS = [1]", "CORS_ALLOWED_ORIGINS"),
        ("PORT = 70000", "Setting PORT must be between 0 and 65535"),
        ("backends = {'m': {}}", "backends in settings module 'clisettings' is not a setting"),
        ("backends = {'m': {}}", "did you mean BACKENDS?"),
        ("BACKEND = {'m': {}}", "Unknown setting BACKEND in settings module"),
        ("BACKEND = {'m': {}}", "did you mean BACKENDS?"),
        ("Backends = {'m': {}}", "did you mean BACKENDS?"),
        ("SYNC_TIMOUT = 3", "did you mean SYNC_TIMEOUT?"),
        ("EVENT = 'e'\nx = 1 +", "Cannot import settings module 'clisettings': SyntaxError"),
        ("EVENT = 1 / 0", "Cannot import settings module 'clisettings': ZeroDivisionError"),
    ],
)
def test_bad_settings_stop_start_up_with_a_clear_message(tmp_path, settings, message):
    result = run_cli("serve", "--port", str(free_port()), settings=settings, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_every_configuration_error_is_reported_one_per_line(tmp_path):
    settings = """
    backends = {"m": {}}
    EVNT = "typo"
    DEBUG = "yes"
    PORT = "80"
    helper = 1  # lower-case names that are no setting are the module's own business
    """
    result = run_cli("serve", settings=settings, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert all(line.startswith("backboneio: configuration error: ") for line in lines), lines
    assert len(lines) == 4, lines
    for expected in ("did you mean BACKENDS?", "EVNT", "DEBUG", "PORT"):
        assert any(expected in line for line in lines), (expected, lines)


def test_settings_check_collects_every_problem():
    from backboneio.settings import SettingsErrors

    settings = Settings({"BACKEND": {}, "EVENT": "", "MAX_MESSAGE_SIZE": "big"})
    with pytest.raises(SettingsErrors) as caught:
        settings.check()
    messages = caught.value.messages
    assert len(messages) == 3, messages
    assert "did you mean BACKENDS?" in messages[0]
    assert str(caught.value) == "\n".join(messages)


@pytest.mark.parametrize("port", ["abc", "99999", "-1", "3000.5"])
def test_an_invalid_port_is_one_line(tmp_path, port):
    result = run_cli("serve", "--port", port, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "argument --port" in result.stderr
    assert "is not a port number" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_are_one_line_too(tmp_path):
    result = run_cli("serve", "--nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "backboneio: error: unrecognized arguments: --nope (see backboneio --help)"
    ]


def test_version(tmp_path):
    from importlib.metadata import version

    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"backboneio {version('backboneio')}\n"


def test_settings_given_as_a_file_path(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    # A module beside the settings file imports, as beside a script.
    (folder / "shared_names.py").write_text("enabled = ['timestamps']\n")
    (folder / "prod.py").write_text("from shared_names import enabled\nPLUGINS = enabled\n")
    result = run_cli("plugins", "--format", "json", "--settings", "conf/prod.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p["name"] for p in json.loads(result.stdout)] == ["timestamps"]
    (folder / "bad.py").write_text("EVNT = 1\n")
    result = run_cli("serve", "--settings", str(folder / "bad.py"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"Unknown setting EVNT in settings file '{folder / 'bad.py'}'" in result.stderr
    result = run_cli("serve", "--settings", "conf/missing.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "Settings file 'conf/missing.py' does not exist" in result.stderr


def test_a_settings_module_that_does_not_import(tmp_path):
    result = run_cli("serve", "--settings", "no_such_settings_module", cwd=tmp_path)
    assert result.returncode == 2
    assert "Cannot import settings module 'no_such_settings_module'" in result.stderr


def test_settings_module_from_the_environment(tmp_path, connect):
    (tmp_path / "envsettings.py").write_text("EVENT = 'from-env'\nBACKENDS = {'m': {}}\n")
    srv = ServerProcess(
        None, env={"BACKBONEIO_SETTINGS": "envsettings", "PYTHONPATH": str(tmp_path)}
    )
    with srv:
        assert connect(srv.url, "m").listen()["event"] == "from-env"


def test_settings_object_defaults_and_lookup():
    settings = Settings({"EVENT": "e"})
    assert settings.EVENT == "e"
    assert settings.PORT == 3000
    assert settings.get("NOT_DECLARED", "fallback") == "fallback"
    with pytest.raises(AttributeError):
        settings.lowercase  # noqa: B018


def test_build_server_names_the_unknown_store_and_the_known_ones():
    with pytest.raises(ConfigurationError, match="known stores: memory") as caught:
        build_server(Settings({"BACKENDS": {"m": {"store": "nope"}}}))
    assert "fixed" not in str(caught.value)  # the test-only plugin's store


def test_build_server_with_the_test_plugin_named_knows_its_store():
    with pytest.raises(ConfigurationError, match=r"known stores: fixed, memory$"):
        build_server(Settings({"PLUGINS": ["testplugin"], "BACKENDS": {"m": {"store": "nope"}}}))


def test_serve_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backboneio", "serve", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = first_line_with(proc, "serving on")
    assert f"backboneio serving on http://127.0.0.1:{port}" in line
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/backbone.io.js") as response:
        assert response.status == 200
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "backboneio stopped" in out
    assert "Traceback" not in out


def test_serve_reports_a_port_in_use(tmp_path):
    with ServerProcess(None) as srv:
        result = run_cli("serve", "--port", str(srv.port), cwd=tmp_path)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{srv.port}" in result.stderr


@pytest.mark.parametrize("name", ["hostport", "hostport.py"])
def test_host_and_port_settings_are_used(tmp_path, name):
    port = free_port()
    (tmp_path / "hostport.py").write_text(f"HOST = '127.0.0.1'\nPORT = {port}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "backboneio", "serve", "--settings", name],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    try:
        assert f"serving on http://127.0.0.1:{port}" in first_line_with(proc, "serving on")
    finally:
        proc.terminate()
        proc.wait(10)


TEST_PLUGINS = {"BACKBONEIO_TEST_PLUGINS": "1"}


def test_plugins_command_lists_plugins_as_json(tmp_path):
    result = run_cli("plugins", "--format", "json", cwd=tmp_path, env=TEST_PLUGINS)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["testplugin"]["version"] == "1.2.3"
    assert plugins["testplugin"]["distribution"] == "backboneio-testplugin"
    assert "authenticate" in plugins["testplugin"]["hooks"]
    assert not any(p["default"] for p in plugins.values())


def test_plugins_command_all_includes_the_defaults_as_a_table(tmp_path):
    result = run_cli("plugins", "--all", cwd=tmp_path, env=TEST_PLUGINS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "version", "hooks"]
    assert any(line.startswith("testplugin") and "1.2.3" in line for line in lines)
    assert any(
        "backboneio.default_plugins.memory_store (default)" in line and "register_stores" in line
        for line in lines
    )


def test_plugins_command_respects_the_plugins_setting(tmp_path):
    result = run_cli("plugins", "--format", "json", settings="PLUGINS = []", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_listen_checks_settings_and_fills_in_plugin_defaults():
    import backboneio

    with pytest.raises(ConfigurationError, match="Unknown setting NOPE"):
        backboneio.listen(None, {}, settings=Settings({"NOPE": 1}))
    server = backboneio.listen(None, {}, settings=Settings({"EVENT": "e"}))
    # Declared by backboneio-timestamps through register_settings, default [].
    assert server.settings.TIMESTAMPS_BACKENDS == []


def test_same_origin_behind_a_tls_proxy_is_allowed_and_others_are_not():
    from backboneio.socketio_adapter import origin_checker as _origin_checker

    environ = {
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "app.example",
        "HTTP_X_FORWARDED_PROTO": "https",
    }
    allowed = _origin_checker(Settings().cors_origins)
    assert allowed("https://app.example", environ)
    assert allowed("http://app.example", environ)
    assert not allowed("https://evil.example", environ)
    assert allowed(None, environ)  # servers and scripts send no Origin


def test_memo_builds_once_per_settings_unless_fresh():
    settings, calls = Settings(), []

    def build():
        calls.append(1)
        return len(calls)

    assert settings.memo("plugin.thing", build) == 1
    assert settings.memo("plugin.thing", build) == 1
    assert settings.memo("plugin.thing", build, fresh=True) == 2
    assert Settings().memo("plugin.thing", build) == 3
