"""Every hook, exercised through backboneio-testplugin, installed through a real entry point.

One ``test_hook_<name>`` per hook in hookspecs.py; test_docs.py checks the list.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from backboneio import hookspecs
from backboneio.plugins import get_plugin_manager

from tests.support.client import refusal

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

    with ServerProcess(TESTPLUGIN.format(log=str(log_file))) as srv:
        yield srv


def logged(log_file: Path, hook: str) -> list[dict]:
    if not log_file.exists():
        return []
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [r for r in records if r["hook"] == hook]


def test_the_test_plugin_is_found_through_its_entry_point():
    pm = get_plugin_manager()
    assert pm.has_plugin("testplugin")
    assert not get_plugin_manager(["backboneio-testplugin"]).has_plugin("nothing-else")


def test_plugins_setting_can_leave_an_installed_plugin_out(start_server, connect):
    srv = start_server('PLUGINS = []\nBACKENDS = {"messages": {}}')
    # With the plugin disabled its auth hook never runs: this would be refused.
    client = connect(srv.url, "messages", auth={"refuse": "go away"})
    assert client.listen()["event"] == "backend"


def test_hook_register_settings(start_server, connect, log_file):
    # TESTPLUGIN is not a core setting; without the plugin it is refused.
    srv = start_server(TESTPLUGIN.format(log=str(log_file)))
    assert connect(srv.url, "messages").listen()["event"] == "backend"
    result = subprocess.run(
        [sys.executable, "-m", "backboneio", "plugins", "--settings", "no_plugin_settings"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent / "apps",
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
    from backboneio.server import expires_at

    class Identity:
        def __init__(self, when):
            self.expires_at = when

    assert expires_at(Identity(10**400)) is None
    assert expires_at(Identity(True)) is None
    assert expires_at(Identity("1700000000")) is None
    assert expires_at(Identity(1_700_000_000)) == 1_700_000_000.0
    assert expires_at("no attribute") is None
