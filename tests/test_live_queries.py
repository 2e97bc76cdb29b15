"""Live queries over the real wire: windows kept current by the server (docs/live-queries.md).

Real ``backboneio serve`` processes and real python-socketio clients. Every
window is rebuilt on the client side from the ack and the ``query`` events
(tests/support/live.py), which checks each event is valid where it lands, and
compared with what the store answers a fresh read of the same query.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.helpers import SECRET, token
from tests.support.client import BackendClient
from tests.support.databases import postgres_url, redis_url  # noqa: F401  (fixtures)
from tests.support.live import drain, subscribe, until_equal
from tests.support.server import ServerProcess

SETTINGS = """
BACKENDS = {"todos": {"store": "memory"}, "notes": {"store": "memory"}}
LIVE_QUERIES_PER_CLIENT = 4
LIVE_QUERY_MAX_MODELS = 50
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS) as srv:
        yield srv


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[tuple[BackendClient, BackendClient]]:
    """A subscriber and a writer, on a backend of their own for this test."""
    backend = "todos"
    sub, writer = BackendClient(server.url, backend), BackendClient(server.url, backend)
    try:
        for model in sub.ok("read"):
            writer.ok("delete", {"id": model["id"]})
        yield sub, writer
    finally:
        sub.close()
        writer.close()


def read(client: BackendClient, data: dict[str, Any]) -> list[Any]:
    if "$sort" not in data:
        data = {**data, "$sort": {"id": 1}}
    return list(client.ok("read", {}, {"data": data}))


# -- the wire ----------------------------------------------------------------


def test_the_ack_is_the_window_and_its_position(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, writer = clients
    for n in range(6):
        writer.ok("create", {"id": f"t{n}", "n": n, "done": n % 2 == 0})
    error, ack = sub.subscribe("q1", {"done": False, "$sort": {"n": -1}, "$limit": 2})
    assert error is None
    assert ack["id"] == "q1"
    assert [m["id"] for m in ack["models"]] == ["t5", "t3"]
    assert isinstance(ack["epoch"], str) and ack["seq"] >= 6
    assert {"channel": None, "epoch": ack["epoch"], "seq": ack["seq"]} in ack["positions"]


def test_models_enter_change_and_leave_in_place(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, writer = clients
    for n in (10, 20, 30):
        writer.ok("create", {"id": f"m{n}", "n": n, "done": False})
    window = subscribe(sub, "w", {"done": False, "$sort": {"n": 1}})
    assert window.ids() == ["m10", "m20", "m30"]

    writer.ok("create", {"id": "m15", "n": 15, "done": False})
    assert sub.queries.get(timeout=5)[1:3] == ("enter", {"id": "m15", "n": 15, "done": False})
    writer.ok("patch", {"id": "m30", "n": 5})  # moves to the top
    _, kind, model, meta = sub.queries.get(timeout=5)
    assert (kind, model["n"], meta["index"]) == ("change", 5, 0)
    writer.ok("patch", {"id": "m20", "done": True})  # stops matching
    _, kind, model, meta = sub.queries.get(timeout=5)
    assert (kind, model["id"], meta["index"]) == ("leave", "m20", None)
    writer.ok("delete", {"id": "m10"})
    _, kind, model, _ = sub.queries.get(timeout=5)
    assert (kind, model["id"]) == ("leave", "m10")
    assert read(writer, {"done": False, "$sort": {"n": 1}}) == [
        {"id": "m30", "n": 5, "done": False},
        {"id": "m15", "n": 15, "done": False},
    ]


def test_a_limit_window_pushes_one_out_and_pulls_one_in(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, writer = clients
    for n in range(5):
        writer.ok("create", {"id": f"p{n}", "at": n})
    query = {"$sort": {"at": -1}, "$limit": 3}
    window = subscribe(sub, "top", query)
    assert window.ids() == ["p4", "p3", "p2"]
    writer.ok("create", {"id": "p9", "at": 9})
    until_equal(sub, window, read(writer, query))
    assert window.ids() == ["p9", "p4", "p3"]
    writer.ok("delete", {"id": "p9"})  # p2 comes back in from below
    until_equal(sub, window, read(writer, query))
    assert window.ids() == ["p4", "p3", "p2"]


def test_skip_and_select_shape_the_window(clients: tuple[BackendClient, BackendClient]) -> None:
    sub, writer = clients
    for n in range(6):
        writer.ok("create", {"id": f"s{n}", "n": n, "secret": "x", "tag": "a"})
    query = {"$sort": {"n": 1}, "$skip": 2, "$limit": 2, "$select": ["n"]}
    window = subscribe(sub, "page", query)
    assert window.models == [{"id": "s2", "n": 2}, {"id": "s3", "n": 3}]
    writer.ok("patch", {"id": "s0", "n": 10})  # leaves the skipped part: s4 comes in
    until_equal(sub, window, read(writer, query))
    assert window.ids() == ["s3", "s4"]
    # A field the window neither shows nor sorts on changes nothing it shows.
    writer.ok("patch", {"id": "s3", "tag": "b"})
    writer.ok("create", {"id": "z", "n": 100})  # sorts after the window
    assert drain(sub, {"page": window}) == 0


def test_a_write_of_a_model_no_window_holds_sends_nothing(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, writer = clients
    subscribe(sub, "done", {"done": True})
    writer.ok("create", {"id": "a", "done": False})
    writer.ok("patch", {"id": "a", "text": "still not done"})
    writer.ok("delete", {"id": "a"})
    assert drain(sub, {}) == 0


def test_the_subscriber_hears_its_own_writes_and_writes_on_any_channel(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, writer = clients
    window = subscribe(sub, "all", {})
    sub.ok("create", {"id": "own"})
    writer.listen("room-1")
    writer.ok("create", {"id": "roomy"})
    until_equal(sub, window, read(writer, {}))
    assert window.ids() == ["own", "roomy"]
    writer.ok("patch", {"id": "roomy", "x": 1})
    sub_id, kind, model, meta = sub.queries.get(timeout=5)
    assert (sub_id, kind, model["x"]) == ("all", "change", 1)
    assert meta["channel"] == "room-1"  # the position of the write, in its stream


def test_identical_queries_share_one_window_and_each_hears_its_own_id(
    server: ServerProcess, clients: tuple[BackendClient, BackendClient]
) -> None:
    sub, writer = clients
    with BackendClient(server.url, "todos") as other:
        a = subscribe(sub, "mine", {"done": False, "$limit": 5})
        b = subscribe(other, "yours", {"$limit": 5, "done": False})  # same query, keys swapped
        writer.ok("create", {"id": "shared", "done": False})
        assert sub.queries.get(timeout=5)[:2] == ("mine", "enter")
        assert other.queries.get(timeout=5)[:2] == ("yours", "enter")
        assert a.ids() == b.ids() == []


def test_unsubscribe_stops_the_events(clients: tuple[BackendClient, BackendClient]) -> None:
    sub, writer = clients
    subscribe(sub, "u", {})
    assert sub.unsubscribe("u") == (None, {"id": "u"})
    assert sub.unsubscribe("never") == (None, {"id": "never"})  # idempotent
    assert tuple(sub.call("unsubscribe", {"id": "u"})) == (None, {"id": "u"})
    writer.ok("create", {"id": "after"})
    assert drain(sub, {}) == 0
    subscribe(sub, "u", {})  # the id is free again


def test_a_socket_may_hold_so_many_subscriptions(
    server: ServerProcess, clients: tuple[BackendClient, BackendClient]
) -> None:
    sub, _ = clients
    for n in range(4):
        subscribe(sub, f"q{n}", {"n": n})
    error, answer = sub.subscribe("q4", {"n": 4})
    assert answer is None
    assert error["error"]["name"] == "BadRequest"
    assert error["error"]["limit"] == 4
    assert "LIVE_QUERIES_PER_CLIENT" in error["error"]["message"]
    sub.unsubscribe("q0")
    subscribe(sub, "q4", {"n": 4})
    # Per socket: a disconnect ends all of them, and another socket has its own.
    with BackendClient(server.url, "todos") as other:
        for n in range(4):
            subscribe(other, f"q{n}", {"n": n})


@pytest.mark.parametrize(
    ("request_args", "message"),
    [
        ({"query": {}}, "subscription id"),
        ({"id": "", "query": {}}, "subscription id"),
        ({"id": "x" * 65, "query": {}}, "subscription id"),
        ({"id": 7, "query": {}}, "subscription id"),
        ({"id": "q", "query": []}, "must be an object"),
        ({"id": "q", "query": {"$where": "1"}}, "Unknown query operator"),
        ({"id": "q", "query": {"n": {"$gt": [1]}}}, "needs a number or a string"),
        ({"id": "q", "query": {"$limit": -1}}, "$limit"),
        ("just a string", "subscribe takes"),
    ],
)
def test_a_bad_subscription_is_refused_and_the_server_keeps_serving(
    clients: tuple[BackendClient, BackendClient], request_args: Any, message: str
) -> None:
    sub, writer = clients
    error, answer = sub.call("subscribe", request_args)
    assert answer is None
    assert error["error"]["name"] == "BadRequest"
    assert message in error["error"]["message"]
    window = subscribe(sub, "fine", {})
    writer.ok("create", {"id": "still"})
    until_equal(sub, window, read(writer, {}))


def test_a_duplicate_id_is_refused_and_the_first_keeps_going(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, writer = clients
    window = subscribe(sub, "dup", {})
    error, _ = sub.subscribe("dup", {"n": 1})
    assert "already has a subscription" in error["error"]["message"]
    writer.ok("create", {"id": "x"})
    until_equal(sub, window, read(writer, {}))


def test_a_query_matching_too_many_models_is_refused(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, writer = clients
    for n in range(51):
        writer.ok("create", {"id": f"many{n:02}", "n": n})
    error, _ = sub.subscribe("big", {})
    assert error["error"]["limit"] == 50
    assert "LIVE_QUERY_MAX_MODELS" in error["error"]["message"]
    # A narrower query of the same data is fine, even with a bigger window.
    window = subscribe(sub, "small", {"n": {"$lt": 10}, "$limit": 100})
    assert len(window.models) == 10


def test_a_subscribe_without_an_ack_is_answered_as_an_error_event(
    clients: tuple[BackendClient, BackendClient],
) -> None:
    sub, _ = clients
    sub.sio.emit("subscribe", {"id": "q", "query": {}}, namespace=sub.namespace)
    error = sub.errors.get(timeout=5)
    assert error["event"] == "subscribe"


def test_backend_emit_from_server_code_moves_windows() -> None:
    script = str(Path(__file__).parent / "apps" / "emitter.py")  # emits what /emit is given
    with ServerProcess(script=script) as srv, BackendClient(srv.url, "messages") as sub:
        window = subscribe(sub, "all", {"n": "1"})
        urllib.request.urlopen(f"{srv.url}/emit?event=created&id=e1&n=1").close()
        urllib.request.urlopen(f"{srv.url}/emit?event=created&id=e2&n=2&channel=room").close()
        urllib.request.urlopen(f"{srv.url}/emit?event=patched&id=e1&n=1&text=hi").close()
        until_equal(sub, window, [{"id": "e1", "n": "1", "text": "hi"}])
        urllib.request.urlopen(f"{srv.url}/emit?event=deleted&id=e1").close()
        until_equal(sub, window, [])


# -- per-recipient rules -----------------------------------------------------

TOKEN_SETTINGS = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
TOKEN_AUTH_OWNER_ATTRIBUTE = "owner"
BACKENDS = {{"notes": {{"store": "memory"}}}}
"""


def test_a_model_a_client_may_not_see_never_enters_its_window() -> None:
    with ServerProcess(TOKEN_SETTINGS) as srv:
        alice_auth = {"token": token(sub="alice")}
        bob_auth = {"token": token(sub="bob")}
        with (
            BackendClient(srv.url, "notes", auth=alice_auth) as alice,
            BackendClient(srv.url, "notes", auth=bob_auth) as bob,
        ):
            alice.ok("create", {"id": "diary", "private": True, "owner": "alice", "n": 1})
            query = {"$sort": {"n": 1}}
            mine, theirs = subscribe(alice, "a", query), subscribe(bob, "b", query)
            assert mine.ids() == ["diary"] and theirs.ids() == []
            alice.ok("create", {"id": "secret2", "private": True, "owner": "alice", "n": 0})
            alice.ok("create", {"id": "public", "owner": "alice", "n": 2})
            until_equal(alice, mine, read(alice, query))
            # Events to one socket arrive in order: the public one's enter at
            # index 0 proves neither private model was ever in bob's window.
            _, kind, model, meta = bob.queries.get(timeout=5)
            assert (kind, model["id"], meta["index"]) == ("enter", "public", 0)
            alice.ok("patch", {"id": "diary", "private": False})  # now public: it enters
            _, kind, model, meta = bob.queries.get(timeout=5)
            assert (kind, model["id"], meta["index"]) == ("enter", "diary", 0)
            alice.ok("patch", {"id": "diary", "private": True})  # private again: it leaves
            _, kind, model, _ = bob.queries.get(timeout=5)
            assert (kind, model["id"]) == ("leave", "diary")


def test_a_subscription_is_authorized_as_a_read() -> None:
    settings = "BACKENDS = {'todos': {'store': 'memory', 'login_required': ['read']}}\n"
    with ServerProcess(settings) as srv, BackendClient(srv.url, "todos") as anonymous:
        error, answer = anonymous.subscribe("q", {})
        assert answer is None
        assert error["error"]["name"] == "Unauthorized"
        assert "read" in error["error"]["message"]
        # Refused before anything was held: the same id is free for a later try.
        error, _ = anonymous.subscribe("q", {})
        assert "already has" not in error["error"]["message"]
