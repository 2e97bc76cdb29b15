"""Presence over the real wire: who is on a backend or channel, join/update/leave, grace.

Each test runs a real ``backboneio serve`` and real python-socketio clients;
connections are cut abruptly through a TCP relay, as a network would.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.proxy import Relay
from tests.security.helpers import SECRET, token
from tests.support.client import TIMEOUT, BackendClient
from tests.support.server import ServerProcess

GRACE = 1.0
SETTINGS = f"""
BACKENDS = {{"messages": {{"store": "memory"}}}}
PRESENCE_GRACE = {GRACE}
PRESENCE_MAX_BYTES = 200
"""
AUTH_SETTINGS = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
BACKENDS = {{"messages": {{"store": "memory"}}}}
PRESENCE_GRACE = {GRACE}
"""


class PresenceClient(BackendClient):
    """A BackendClient that also records the ``presence`` events it hears."""

    def __init__(self, url: str, backend: str = "messages", **options: Any) -> None:
        auth = options.pop("auth", None)
        super().__init__(url, backend, connect=False, **options)
        self.events: queue.Queue[tuple[str, dict[str, Any], dict[str, Any]]] = queue.Queue()
        self.sio.on("presence", self._presence, namespace=self.namespace)
        self.connect(auth=auth)

    def _presence(self, kind: str, member: dict[str, Any], meta: dict[str, Any]) -> None:
        self.events.put((kind, member, meta))

    def announce(
        self, channel: str | None, state: dict[str, Any], presence_id: str | None = None
    ) -> Any:
        options: dict[str, Any] = {"presence": state}
        if presence_id is not None:
            options["presenceId"] = presence_id
        return self.sio.call("listen", (channel, options), namespace=self.namespace, timeout=5)

    def presence(self, options: dict[str, Any] | None = None) -> Any:
        args = (options,) if options is not None else ()
        return self.sio.call("presence", *args, namespace=self.namespace, timeout=TIMEOUT)

    def next_event(self, timeout: float = TIMEOUT) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return self.events.get(timeout=timeout)

    def wait_event(
        self, kind: str, member_id: str, timeout: float = TIMEOUT
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The first ``kind`` event about ``member_id``; others before it are dropped."""
        while True:
            try:
                got, member, meta = self.events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {kind} of {member_id} within {timeout} s") from None
            if got == kind and member["id"] == member_id:
                return member, meta

    def quiet(self, wait: float) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Every event heard within ``wait`` seconds (an empty list: none)."""
        heard = []
        try:
            while True:
                heard.append(self.events.get(timeout=wait))
        except queue.Empty:
            return heard


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS) as srv:
        yield srv


@pytest.fixture(scope="module")
def auth_server() -> Iterator[ServerProcess]:
    with ServerProcess(AUTH_SETTINGS) as srv:
        yield srv


@pytest.fixture
def clients() -> Iterator[list[PresenceClient]]:
    made: list[PresenceClient] = []
    yield made
    for client in made:
        with contextlib.suppress(Exception):
            client.close()


@pytest.fixture
def relay(server: ServerProcess) -> Iterator[Relay]:
    through = Relay(server.port)
    yield through
    through.close()


def make(clients: list[PresenceClient], url: str, **options: Any) -> PresenceClient:
    client = PresenceClient(url, **options)
    clients.append(client)
    return client


def ids(answer: dict[str, Any]) -> list[str]:
    return [m["id"] for m in answer["presence"]["members"]]


def test_a_listen_with_presence_answers_the_members_and_its_own_id(server, clients):
    alice = make(clients, server.url)
    answer = alice.announce("room-ack", {"name": "alice"})
    me = answer["presence"]["self"]
    assert answer["channel"] == "room-ack"
    assert answer["presence"]["channel"] == "room-ack"
    assert answer["presence"]["members"] == [
        {"id": me, "state": {"name": "alice"}, "connections": 1}
    ]
    bob = make(clients, server.url)
    answer = bob.announce("room-ack", {"name": "bob"})
    assert ids(answer) == [me, answer["presence"]["self"]]


def test_join_update_and_leave_are_seen_by_the_others(server, clients):
    watcher = make(clients, server.url)
    watcher.listen("room-1")
    assert watcher.presence() == (None, {"channel": "room-1", "self": None, "members": []})
    alice = make(clients, server.url)
    me = alice.announce("room-1", {"name": "alice"})["presence"]["self"]
    member, meta = watcher.wait_event("join", me)
    assert member == {"id": me, "state": {"name": "alice"}, "connections": 1}
    assert meta == {"channel": "room-1"}

    error, answer = alice.presence({"state": {"name": "alice", "typing": True}})
    assert error is None and answer["self"] == me
    member, _ = watcher.wait_event("update", me)
    assert member["state"] == {"name": "alice", "typing": True}

    error, answer = alice.presence({"state": None})
    assert error is None and answer == {"channel": "room-1", "self": None, "members": []}
    member, _ = watcher.wait_event("leave", me)
    assert member["id"] == me
    assert watcher.presence()[1]["members"] == []


def test_presence_is_per_channel(server, clients):
    in_a, in_b = make(clients, server.url), make(clients, server.url)
    a_id = in_a.announce("chan-a", {"name": "a"})["presence"]["self"]
    answer = in_b.announce("chan-b", {"name": "b"})
    assert ids(answer) == [answer["presence"]["self"]]
    # Nothing of chan-a reaches chan-b; moving to chan-b is a leave there and a join here.
    in_a.presence({"state": {"name": "a2"}})
    in_a.announce("chan-b", {"name": "a"})
    _member, meta = in_b.wait_event("join", a_id)
    assert meta["channel"] == "chan-b"
    assert all(m["state"] != {"name": "a2"} for _, m, _ in in_b.quiet(0.2))
    assert sorted(in_b.presence()[1]["members"], key=lambda m: m["state"]["name"]) == [
        {"id": a_id, "state": {"name": "a"}, "connections": 1},
        {"id": answer["presence"]["self"], "state": {"name": "b"}, "connections": 1},
    ]


def test_two_connections_of_one_identity_are_one_member(auth_server, clients):
    watcher = make(clients, auth_server.url, auth={"token": token(sub="watcher")})
    watcher.listen("team")
    tab1 = make(clients, auth_server.url, auth={"token": token(sub="alice")})
    tab2 = make(clients, auth_server.url, auth={"token": token(sub="alice")})
    first = tab1.announce("team", {"name": "alice", "tab": 1})["presence"]
    second = tab2.announce("team", {"name": "alice", "tab": 2})["presence"]
    assert first["self"] == second["self"]
    assert second["members"] == [
        {"id": first["self"], "state": {"name": "alice", "tab": 2}, "connections": 2}
    ]
    watcher.wait_event("join", first["self"])
    member, _ = watcher.wait_event("update", first["self"])
    assert member["connections"] == 2
    # One tab closing is an update; the member leaves with its last connection.
    tab2.close()
    member, _ = watcher.wait_event("update", first["self"], timeout=GRACE + 2)
    assert member == {"id": first["self"], "state": {"name": "alice", "tab": 1}, "connections": 1}
    assert watcher.presence()[1]["members"] == [member]
    tab1.close()
    watcher.wait_event("leave", first["self"], timeout=GRACE + 2)
    assert watcher.presence()[1]["members"] == []


def test_a_cut_connection_leaves_within_the_grace_period_and_a_second(server, relay, clients):
    watcher = make(clients, server.url)
    watcher.listen("cut")
    victim = make(clients, relay.url)
    me = victim.announce("cut", {"name": "gone soon"})["presence"]["self"]
    watcher.wait_event("join", me)
    relay.cut()  # no disconnect packet: the TCP connection is just gone
    watcher.wait_event("leave", me, timeout=GRACE + 1)
    assert watcher.presence()[1]["members"] == []


def test_a_reconnect_within_the_grace_period_is_no_leave_and_no_join(server, relay, clients):
    watcher = make(clients, server.url)
    watcher.listen("flicker")
    page_id = "page-0123456789"
    first = make(clients, relay.url)
    me = first.announce("flicker", {"name": "carol"}, presence_id=page_id)["presence"]["self"]
    watcher.wait_event("join", me)
    relay.cut()
    relay.restore()
    again = make(clients, relay.url)
    answer = again.announce("flicker", {"name": "carol"}, presence_id=page_id)
    assert answer["presence"]["self"] == me
    assert answer["presence"]["members"] == [
        {"id": me, "state": {"name": "carol"}, "connections": 1}
    ]
    # Past the grace period of the old connection: still nothing heard.
    assert watcher.quiet(GRACE + 1) == []
    assert watcher.presence()[1]["members"] == answer["presence"]["members"]
    # The control: without the reconnect, the same cut is a leave.
    relay.cut()
    watcher.wait_event("leave", me, timeout=GRACE + 1)


def test_an_oversized_state_is_refused_and_the_server_keeps_serving(server, clients):
    big = make(clients, server.url)
    answer = big.announce("big", {"text": "x" * 300})
    assert answer["error"]["name"] == "PayloadTooLarge"
    assert "PRESENCE_MAX_BYTES (200)" in answer["error"]["message"]
    error, _ = big.presence({"state": {"text": "x" * 300}})
    assert error["error"]["name"] == "PayloadTooLarge"
    for bad in ([1], {"state": "alice"}, {"state": {}, "presenceId": "short"}):
        error, _ = big.presence(bad)
        assert error["error"]["name"] == "BadRequest", bad
    assert big.presence()[1]["members"] == []  # the refused listen did not join
    # The same socket and others go on: a fitting state joins, a write is answered.
    answer = big.announce("big", {"text": "x" * 100})
    assert ids(answer) == [answer["presence"]["self"]]
    other = make(clients, server.url)
    assert other.ok("create", {"text": "still serving"})["text"] == "still serving"
