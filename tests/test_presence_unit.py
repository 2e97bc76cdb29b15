"""Presence without a socket: the wire rules, the in-process store and the registry's grace.

The registry is given a clock the test turns by hand (``Timers``), so the grace
period is proved without waiting for it; tests/test_presence.py proves the same
over the wire with a real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from backboneio.errors import BadRequest, PayloadTooLarge
from backboneio.presence import (
    Change,
    MemoryPresence,
    Registry,
    member_key,
    parse_listen_options,
    parse_request,
    parse_state,
)


class Timer:
    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn, self.args, self.cancelled = fn, args, False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """``call_later`` whose timers fire when the test says the grace period is over."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []

    def __call__(self, seconds: float, fn: Any, *args: Any) -> Timer:
        timer = Timer(fn, args)
        self.timers.append(timer)
        return timer

    def elapse(self) -> None:
        timers, self.timers = self.timers, []
        for timer in timers:
            if not timer.cancelled:
                timer.fn(*timer.args)


@dataclass
class Sock:
    """What the registry reads of the hub's Client."""

    sid: str
    channel: str | None = "room"
    identity: Any = None
    backend: str = "messages"


@pytest.fixture
def told() -> list[tuple[str, str, int]]:
    return []


@pytest.fixture
def timers() -> Timers:
    return Timers()


@pytest.fixture
def registry(told, timers) -> Registry:
    def tell(scope: Any, change: Change) -> None:
        told.append((change.kind, change.member["id"], change.member["connections"]))

    return Registry(MemoryPresence(), tell, 3.0, call_later=timers)


def listen(registry: Registry, sock: Sock, state: dict[str, Any], pid: str | None = None) -> dict:
    answer: dict[str, Any] = {}
    options: dict[str, Any] = {"presence": state}
    if pid:
        options["presenceId"] = pid
    registry.listened(sock, parse_listen_options((sock.channel, options), 1024), answer)
    return answer["presence"]


def test_a_state_is_a_json_object_within_the_limit():
    assert parse_state({"name": "ann"}, 100) == {"name": "ann"}
    with pytest.raises(PayloadTooLarge, match="PRESENCE_MAX_BYTES"):
        parse_state({"name": "x" * 100}, 100)
    # Bytes, not characters: four-byte characters count four times.
    with pytest.raises(PayloadTooLarge):
        parse_state({"n": "\U0001f600" * 20}, 60)
    for bad in ("ann", ["ann"], 3, None):
        with pytest.raises(BadRequest):
            parse_state(bad, 100)


def test_a_request_sets_leaves_or_only_asks():
    assert parse_request((), 100).set_state is False
    assert parse_request(({},), 100).set_state is False
    left = parse_request(({"state": None},), 100)
    assert left.set_state is True and left.state is None
    assert parse_request(({"state": {"a": 1}, "presenceId": "abcdefgh"},), 100).presence_id == (
        "abcdefgh"
    )
    for bad in ((1,), ({"presenceId": "short"},), ({"presenceId": "no spaces ok?"},), ({}, {})):
        with pytest.raises(BadRequest):
            parse_request(bad, 100)


def test_members_are_keyed_on_identity_else_on_the_connection():
    assert member_key({"sub": "ann"}, "page-1234", "sid1") == member_key({"sub": "ann"}, None, "x")
    assert member_key({"sub": "ann"}, None, "s") == 'subject:"ann"'
    assert member_key(None, "page-1234", "sid1") == member_key(None, "page-1234", "sid2")
    assert member_key(None, None, "sid1") != member_key(None, None, "sid2")
    # Others see neither a page's presenceId nor a whole identity, only digests.
    assert "page-1234" not in member_key(None, "page-1234", "sid1")
    secret = {"email": "ann@example.com", "role": "admin"}
    assert member_key(secret, None, "s").startswith("user:")
    assert "ann@example.com" not in member_key(secret, None, "s")


def test_join_update_leave(registry, told):
    me = listen(registry, Sock("s1"), {"name": "ann"})["self"]
    registry.request(Sock("s1"), ({"state": {"name": "ann", "typing": True}},), 1024)
    registry.request(Sock("s1"), ({"state": None},), 1024)
    assert told == [("join", me, 1), ("update", me, 1), ("leave", me, 0)]


def test_the_same_state_again_tells_nothing(registry, told):
    listen(registry, Sock("s1"), {"name": "ann"})
    listen(registry, Sock("s1"), {"name": "ann"})
    assert [kind for kind, _, _ in told] == ["join"]


def test_tabs_of_one_identity_are_one_member(registry, told, timers):
    ann = {"sub": "ann"}
    first = listen(registry, Sock("t1", identity=ann), {"tab": 1})
    second = listen(registry, Sock("t2", identity=ann), {"tab": 2})
    assert first["self"] == second["self"]
    assert second["members"] == [{"id": first["self"], "state": {"tab": 2}, "connections": 2}]
    registry.dropped("messages", "t2")
    timers.elapse()
    registry.dropped("messages", "t1")
    assert told[-1][0] == "update"  # still in the grace period
    timers.elapse()
    me = first["self"]
    assert told == [("join", me, 1), ("update", me, 2), ("update", me, 1), ("leave", me, 0)]
    assert registry.members(("messages", "room")) == []


def test_a_dropped_connection_leaves_after_the_grace_period(registry, told, timers):
    me = listen(registry, Sock("s1"), {"name": "ann"})["self"]
    registry.dropped("messages", "s1")
    assert told == [("join", me, 1)]
    timers.elapse()
    assert told == [("join", me, 1), ("leave", me, 0)]


def test_a_reconnect_within_the_grace_period_tells_nothing(registry, told, timers):
    me = listen(registry, Sock("old"), {"name": "ann"}, pid="page-1234")["self"]
    registry.dropped("messages", "old")
    assert listen(registry, Sock("new"), {"name": "ann"}, pid="page-1234")["self"] == me
    timers.elapse()
    assert told == [("join", me, 1)]
    assert registry.members(("messages", "room")) == [
        {"id": me, "state": {"name": "ann"}, "connections": 1}
    ]


def test_a_reconnect_announced_before_the_old_socket_closed_keeps_the_member(
    registry, told, timers
):
    me = listen(registry, Sock("old"), {"name": "ann"}, pid="page-1234")["self"]
    listen(registry, Sock("new"), {"name": "ann"}, pid="page-1234")
    registry.dropped("messages", "old")  # the server noticed the old one only now
    timers.elapse()
    assert told == [("join", me, 1)]
    registry.dropped("messages", "new")
    timers.elapse()
    assert told == [("join", me, 1), ("leave", me, 0)]


def test_moving_to_another_channel_leaves_the_old_one_at_once(registry, told):
    sock = Sock("s1", channel="a")
    me = listen(registry, sock, {"name": "ann"})["self"]
    sock.channel = "b"
    registry.listened(sock, None, {})  # a listen without presence: not present on b
    assert told == [("join", me, 1), ("leave", me, 0)]
    assert registry.members(("messages", "a")) == registry.members(("messages", "b")) == []


def test_a_grace_of_zero_drops_at_once(told):
    registry = Registry(MemoryPresence(), lambda scope, c: told.append(c.kind), 0)
    listen(registry, Sock("s1"), {"name": "ann"})
    registry.dropped("messages", "s1")
    assert told == ["join", "leave"]


class SharedStore:
    """A store shared by two registries, as a Redis one would be by two processes:
    one set of members, and each change delivered to the other registries."""

    def __init__(self, members: MemoryPresence, others: list[Any]) -> None:
        self.data, self.others, self.deliver = members, others, None

    def start(self, deliver: Any) -> None:
        self.deliver = deliver
        self.others.append(deliver)

    def _publish(self, scope: Any, change: Change | None) -> Change | None:
        if change is not None:
            for deliver in self.others:
                if deliver is not self.deliver:
                    deliver(scope, change)
        return change

    def put(self, scope: Any, key: str, conn: str, state: dict[str, Any]) -> Change | None:
        return self._publish(scope, self.data.put(scope, key, conn, state))

    def remove(self, scope: Any, key: str, conn: str) -> Change | None:
        return self._publish(scope, self.data.remove(scope, key, conn))

    def members(self, scope: Any) -> list[dict[str, Any]]:
        return self.data.members(scope)


def test_a_shared_store_plugs_in_with_use_and_carries_changes_between_registries(timers):
    members, others = MemoryPresence(), []
    heard: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}
    registries = {}
    for name in ("a", "b"):

        def tell(scope: Any, change: Change, name: str = name) -> None:
            heard[name].append((change.kind, change.member["connections"]))

        registries[name] = Registry(MemoryPresence(), tell, 3.0, call_later=timers)
        registries[name].use(SharedStore(members, others))
    ann = {"sub": "ann"}
    listen(registries["a"], Sock("a1", identity=ann), {"tab": 1})
    second = listen(registries["b"], Sock("b1", identity=ann), {"tab": 2})
    # One member across both "processes", and each told its own sockets of every change.
    assert second["members"] == [{"id": 'subject:"ann"', "state": {"tab": 2}, "connections": 2}]
    assert heard["a"] == heard["b"] == [("join", 1), ("update", 2)]
    registries["a"].dropped("messages", "a1")
    timers.elapse()
    assert heard["b"][-1] == ("update", 1)
    assert registries["b"].members(("messages", "room"))[0]["state"] == {"tab": 2}
