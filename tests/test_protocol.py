"""The wire protocol (docs/protocol.md), spoken by real clients to a real server."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import socketio

from tests.support.client import BackendClient
from tests.support.server import ServerProcess

SETTINGS = """
BACKENDS = {
    "messages": {"store": "memory"},
    "todos": {"store": "memory", "id_attribute": "_id"},
    "news": {"store": "memory", "event": "headline"},
}
"""


@pytest.fixture(scope="module", params=["all-plugins", "no-plugins"])
def server(request):
    # Installed plugins may filter broadcasts per recipient (a different code
    # path from one emit per broadcast), so the protocol is checked both ways.
    prefix = "PLUGINS = []\n" if request.param == "no-plugins" else ""
    with ServerProcess(prefix + SETTINGS) as srv:
        yield srv


@pytest.fixture
def pair(server, connect):
    """Two clients of the messages backend that both listened without a channel."""
    a, b = connect(server.url, "messages"), connect(server.url, "messages")
    a.listen()
    b.listen()
    return a, b


def test_listen_answers_the_event_prefix(server, connect):
    client = connect(server.url, "messages")
    assert client.listen() == {"event": "backend", "channel": None}


def test_event_prefix_can_be_set_per_backend(server, connect):
    assert connect(server.url, "news").listen()["event"] == "headline"


def test_event_prefix_setting_applies_to_every_backend(start_server, connect):
    srv = start_server('EVENT = "myevent"\nBACKENDS = {"a": {}, "b": {}}')
    assert connect(srv.url, "a").listen()["event"] == "myevent"
    assert connect(srv.url, "b").listen()["event"] == "myevent"


def test_unknown_namespace_is_refused(server):
    sio = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(server.url, namespaces=["/nope"], transports=["websocket"], wait_timeout=5)
    sio.disconnect()


def test_create_returns_the_stored_model_with_a_new_id(pair):
    a, _ = pair
    created = a.ok("create", {"text": "hello"})
    assert created["text"] == "hello"
    assert isinstance(created["id"], str) and created["id"]


def test_create_keeps_a_client_given_id(pair):
    a, _ = pair
    assert a.ok("create", {"id": "given-1", "text": "x"})["id"] == "given-1"


def test_read_with_an_id_returns_one_model(pair):
    a, _ = pair
    created = a.ok("create", {"text": "one"})
    assert a.ok("read", {"id": created["id"]}) == created


def test_read_without_an_id_returns_a_list_filtered_by_options_data(server, connect):
    client = connect(server.url, "messages")
    client.ok("create", {"text": "filtered", "room": "r-list"})
    client.ok("create", {"text": "other", "room": "r-other"})
    found = client.ok("read", {}, {"data": {"room": "r-list"}})
    assert [m["text"] for m in found] == ["filtered"]
    assert len(client.ok("read")) >= 2


def test_read_of_a_missing_model_is_a_not_found_error(pair):
    a, _ = pair
    error, result = a.sync("read", {"id": "does-not-exist"})
    assert result is None
    assert error["error"]["name"] == "NotFound"
    assert error["error"]["status"] == 404
    assert "stack" not in error["error"]


def test_update_replaces_the_model(pair):
    a, _ = pair
    created = a.ok("create", {"text": "old", "extra": 1})
    updated = a.ok("update", {"id": created["id"], "text": "new"})
    assert updated == {"id": created["id"], "text": "new"}
    assert a.ok("read", {"id": created["id"]}) == updated


def test_patch_merges_and_returns_the_whole_model(pair):
    a, _ = pair
    created = a.ok("create", {"text": "t", "done": False})
    patched = a.ok("patch", {"id": created["id"], "done": True})
    assert patched == {"id": created["id"], "text": "t", "done": True}


def test_delete_returns_the_deleted_model(pair):
    a, _ = pair
    created = a.ok("create", {"text": "bye"})
    assert a.ok("delete", {"id": created["id"]}) == created
    error, _ = a.sync("read", {"id": created["id"]})
    assert error["error"]["name"] == "NotFound"


def test_delete_of_a_missing_model_is_a_not_found_error(pair):
    a, _ = pair
    error, _ = a.sync("delete", {"id": "never-was"})
    assert error["error"]["name"] == "NotFound"


def test_id_attribute_is_configurable_per_backend(server, connect):
    client = connect(server.url, "todos")
    created = client.ok("create", {"title": "milk"})
    assert "_id" in created and "id" not in created
    assert client.ok("patch", {"_id": created["_id"], "done": True})["done"] is True


@pytest.mark.parametrize(
    ("method", "model"),
    [("create", {"text": "c"}), ("update", None), ("patch", None), ("delete", None)],
)
def test_writes_are_broadcast_to_the_other_clients_not_the_sender(pair, method, model):
    a, b = pair
    if model is None:
        model = {"id": a.ok("create", {"text": "seed"})["id"], "text": "changed"}
        assert b.next_synced()[0] == "create"
    result = a.ok(method, model)
    assert b.next_synced() == (method, result)
    assert a.heard_nothing()


def test_clients_that_never_listened_still_hear_broadcasts(server, connect):
    quiet = connect(server.url, "messages")
    sender = connect(server.url, "messages")
    created = sender.ok("create", {"text": "to all"})
    assert quiet.next_synced() == ("create", created)


def test_read_is_never_broadcast(pair):
    a, b = pair
    a.ok("read")
    assert b.heard_nothing()


def test_a_failed_sync_is_never_broadcast(pair):
    a, b = pair
    a.sync("delete", {"id": "missing"})
    a.sync("create", {"id": {"not": "an id"}})
    assert b.heard_nothing()


def test_broadcasts_stay_within_their_backend(server, connect):
    messages, todos = connect(server.url, "messages"), connect(server.url, "todos")
    todos.listen()
    messages.ok("create", {"text": "only for messages"})
    assert todos.heard_nothing()


def test_a_channel_only_hears_its_own_writes(server, connect):
    a1, a2, b1, plain = (connect(server.url, "messages") for _ in range(4))
    a1.listen("room-a")
    a2.listen("room-a")
    b1.listen("room-b")
    plain.listen()
    created = a1.ok("create", {"text": "in a"})
    assert a2.next_synced() == ("create", created)
    assert b1.heard_nothing()
    assert plain.heard_nothing()


def test_writes_without_a_channel_reach_clients_on_channels(server, connect):
    on_channel, plain = connect(server.url, "messages"), connect(server.url, "messages")
    on_channel.listen("room-c")
    plain.listen()
    created = plain.ok("create", {"text": "everyone"})
    assert on_channel.next_synced() == ("create", created)


def test_listening_again_switches_channel(server, connect):
    mover, sender_a, sender_b = (connect(server.url, "messages") for _ in range(3))
    sender_a.listen("room-x")
    sender_b.listen("room-y")
    mover.listen("room-x")
    assert mover.listen("room-y") == {"event": "backend", "channel": "room-y"}
    sender_a.ok("create", {"text": "x"})
    assert mover.heard_nothing()
    created = sender_b.ok("create", {"text": "y"})
    assert mover.next_synced() == ("create", created)


def test_server_side_emit_notifies_clients(connect):
    script = str(Path(__file__).parent / "apps" / "emitter.py")
    with ServerProcess(script=script) as srv:
        everyone, on_channel, elsewhere = (connect(srv.url, "messages") for _ in range(3))
        assert everyone.listen()["event"] == "news"
        on_channel.listen("room-1")
        elsewhere.listen("room-2")

        with urllib.request.urlopen(f"{srv.url}/emit?event=created&text=hi") as response:
            assert json.load(response) == {"emitted": "created"}
        assert everyone.next_synced() == ("create", {"text": "hi"})
        assert on_channel.next_synced() == ("create", {"text": "hi"})
        assert elsewhere.next_synced() == ("create", {"text": "hi"})

        urllib.request.urlopen(f"{srv.url}/emit?event=deleted&id=7&channel=room-1").close()
        assert on_channel.next_synced() == ("delete", {"id": "7"})
        assert elsewhere.heard_nothing()
        assert everyone.heard_nothing()


@pytest.mark.parametrize("path", ["/socket.io/backbone.io.js", "/backbone.io.js"])
def test_client_script_is_served(server, path):
    with urllib.request.urlopen(server.url + path) as response:
        assert response.headers["Content-Type"].startswith("application/javascript")
        body = response.read()
    packaged = Path(__file__).parents[1] / "core" / "backboneio" / "static" / "backbone.io.js"
    assert body == packaged.read_bytes()


def test_many_clients_each_hear_every_write(server):
    clients = [BackendClient(server.url, "messages") for _ in range(8)]
    try:
        for c in clients:
            c.listen("crowd")
        sender, *others = clients
        created = [sender.ok("create", {"n": n}) for n in range(5)]
        for other in others:
            assert [other.next_synced()[1] for _ in created] == created
    finally:
        for c in clients:
            c.close()
