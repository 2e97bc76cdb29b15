"""Presence across ``backboneio serve`` processes sharing one Redis (RedisPresence).

Real redis-server, real server processes (ServerCluster), real python-socketio
clients; connections are cut through a TCP relay and a process is killed with
SIGKILL, as a crash would.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from backboneio_redis import RedisPresence
from backboneio_redis.testing import RedisServer, ServerCluster

from tests.browser.proxy import Relay
from tests.security.helpers import SECRET, token
from tests.test_presence import PresenceClient

pytestmark = pytest.mark.redis
Event = tuple[str, dict[str, Any], dict[str, Any]]

GRACE = 1.0
TTL = 2.0
# A killed process's members leave within TTL + GRACE and one beat of a
# survivor (min(TTL / 5, 1) s); the margin is for the event to travel.
KILLED_BOUND = TTL + GRACE + min(TTL / 5, 1.0)
SETTINGS = f"""
BACKENDS = {{"messages": {{"store": "memory"}}}}
PRESENCE_GRACE = {GRACE}
REDIS_PRESENCE_TTL = {TTL}
"""
AUTH_SETTINGS = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
BACKENDS = {{"messages": {{"store": "memory"}}}}
PRESENCE_GRACE = {GRACE}
REDIS_PRESENCE_TTL = {TTL}
"""


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer) -> Iterator[ServerCluster]:
    with ServerCluster(SETTINGS, redis_url=redis_server.url, processes=3) as servers:
        yield servers


@pytest.fixture
def clients() -> Iterator[list[PresenceClient]]:
    made: list[PresenceClient] = []
    yield made
    for client in made:
        with contextlib.suppress(Exception):
            client.close()


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    made: list[Relay] = []
    yield made
    for relay in made:
        relay.close()


def make(clients: list[PresenceClient], url: str, **options: Any) -> PresenceClient:
    client = PresenceClient(url, **options)
    clients.append(client)
    return client


def heard_until(
    client: PresenceClient, done: Callable[[list[Event]], bool], timeout: float
) -> list[Event]:
    """Every event ``client`` hears until ``done(heard)`` (AssertionError after ``timeout`` s)."""
    heard: list[Event] = []
    deadline = time.monotonic() + timeout
    while not done(heard):
        try:
            heard.append(client.events.get(timeout=max(deadline - time.monotonic(), 0.01)))
        except queue.Empty:
            raise AssertionError(f"after {timeout} s, heard only {heard}") from None
    return heard


def left(heard: list[Event]) -> set[str]:
    return {member["id"] for kind, member, _ in heard if kind == "leave"}


def by_id(members: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in members}


def test_sockets_on_two_processes_see_each_other_join_update_and_leave(cluster, clients):
    one, two = cluster.urls[0], cluster.urls[1]
    alice = make(clients, one)
    a_id = alice.announce("room-x", {"name": "alice"})["presence"]["self"]
    bob = make(clients, two)
    answer = bob.announce("room-x", {"name": "bob"})["presence"]
    b_id = answer["self"]
    # Bob's answer holds the member of the other process, oldest first.
    assert answer["members"] == [
        {"id": a_id, "state": {"name": "alice"}, "connections": 1},
        {"id": b_id, "state": {"name": "bob"}, "connections": 1},
    ]
    member, meta = alice.wait_event("join", b_id)
    assert member == {"id": b_id, "state": {"name": "bob"}, "connections": 1}
    assert meta == {"channel": "room-x"}

    bob.presence({"state": {"name": "bob", "typing": True}})
    member, _ = alice.wait_event("update", b_id)
    assert member["state"] == {"name": "bob", "typing": True}
    alice.presence({"state": {"name": "alice", "typing": True}})
    member, _ = bob.wait_event("update", a_id)
    assert member["state"] == {"name": "alice", "typing": True}

    assert alice.presence()[1]["members"] == bob.presence()[1]["members"]
    bob.presence({"state": None})
    member, _ = alice.wait_event("leave", b_id)
    assert member["id"] == b_id
    assert alice.presence()[1]["members"] == [
        {"id": a_id, "state": {"name": "alice", "typing": True}, "connections": 1}
    ]
    # Each change was told once to each socket: nothing more arrives.
    assert [e for e in alice.quiet(0.5) if e[1]["id"] == b_id] == []


def test_a_listener_on_a_third_process_hears_each_change_exactly_once(cluster, clients):
    watcher = make(clients, cluster.urls[2])
    watcher.listen("once")
    alice = make(clients, cluster.urls[0])
    me = alice.announce("once", {"n": 0})["presence"]["self"]
    for n in range(1, 6):
        alice.presence({"state": {"n": n}})
    alice.presence({"state": None})
    heard = [(kind, m["state"]) for kind, m, _ in watcher.quiet(1.0) if m["id"] == me]
    assert heard == [
        ("join", {"n": 0}),
        *[("update", {"n": n}) for n in range(1, 6)],
        ("leave", {"n": 5}),
    ]


@pytest.fixture(scope="module")
def auth_cluster(redis_server: RedisServer) -> Iterator[ServerCluster]:
    with ServerCluster(AUTH_SETTINGS, redis_url=redis_server.url, processes=2) as servers:
        yield servers


def test_one_identity_on_two_processes_is_one_member_with_two_connections(auth_cluster, clients):
    one, two = auth_cluster.urls
    watcher = make(clients, one, auth={"token": token(sub="watcher")})
    watcher.listen("team")
    tab1 = make(clients, one, auth={"token": token(sub="alice")})
    tab2 = make(clients, two, auth={"token": token(sub="alice")})
    first = tab1.announce("team", {"tab": 1})["presence"]
    second = tab2.announce("team", {"tab": 2})["presence"]
    assert first["self"] == second["self"] == 'subject:"alice"'
    assert second["members"] == [{"id": first["self"], "state": {"tab": 2}, "connections": 2}]
    watcher.wait_event("join", first["self"])
    member, _ = watcher.wait_event("update", first["self"])
    assert member["connections"] == 2
    assert watcher.presence()[1]["members"] == second["members"]
    # The tab on the other process goes: one member, one connection, tab 1's state.
    tab2.close()
    member, _ = watcher.wait_event("update", first["self"], timeout=GRACE + 3)
    assert member == {"id": first["self"], "state": {"tab": 1}, "connections": 1}
    tab1.close()
    watcher.wait_event("leave", first["self"], timeout=GRACE + 3)
    assert watcher.presence()[1]["members"] == []


def test_a_reconnect_to_another_process_within_the_grace_is_no_leave_and_no_join(
    cluster, clients, relays
):
    watcher = make(clients, cluster.urls[2])
    watcher.listen("moving")
    to_one, to_two = Relay(cluster.processes[0].port), Relay(cluster.processes[1].port)
    relays += [to_one, to_two]
    page = "page-moving-0123"
    first = make(clients, to_one.url)
    me = first.announce("moving", {"name": "carol"}, presence_id=page)["presence"]["self"]
    watcher.wait_event("join", me)
    to_one.cut()  # process 0 sees the socket drop and starts its grace timer
    again = make(clients, to_two.url)
    answer = again.announce("moving", {"name": "carol"}, presence_id=page)["presence"]
    assert answer["self"] == me
    assert answer["members"] == [{"id": me, "state": {"name": "carol"}, "connections": 1}]
    # Past process 0's grace period: it removed nothing process 1 holds now.
    assert watcher.quiet(GRACE + 1.5) == []
    assert watcher.presence()[1]["members"] == answer["members"]
    # The control: without a reconnect, the same cut is a leave.
    to_two.cut()
    watcher.wait_event("leave", me, timeout=GRACE + 2)
    assert watcher.presence()[1]["members"] == []


def test_the_members_of_a_killed_process_leave_within_ttl_and_grace(redis_server, clients):
    with ServerCluster(SETTINGS, redis_url=redis_server.url, processes=3) as servers:
        urls = servers.urls
        watchers = [make(clients, urls[0]), make(clients, urls[2])]
        for watcher in watchers:
            watcher.listen("crash")
        victims = [make(clients, urls[1]) for _ in range(2)]
        gone = [
            v.announce("crash", {"name": f"v{i}"})["presence"]["self"]
            for i, v in enumerate(victims)
        ]
        stays = make(clients, urls[2]).announce("crash", {"name": "stays"})["presence"]["self"]
        for watcher in watchers:
            for member in gone:
                watcher.wait_event("join", member)
        servers.processes[1].proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        for watcher in watchers:
            heard = heard_until(watcher, lambda h: left(h) >= set(gone), KILLED_BOUND + 2)
            assert left(heard) == set(gone)
        took = time.monotonic() - killed
        print(f"members of the killed process left after {took:.2f} s (bound {KILLED_BOUND} s)")
        for watcher in watchers:
            assert [m["id"] for m in watcher.presence()[1]["members"]] == [stays]
        servers.processes[1].proc.wait(5)


def test_presence_recovers_after_redis_restarts_without_its_data(redis_binary, clients):
    own = RedisServer(redis_binary).start()  # no persistence: a restart loses every key
    try:
        with ServerCluster(SETTINGS, redis_url=own.url, processes=2) as servers:
            one, two = servers.urls
            alice = make(clients, one)
            a_id = alice.announce("blink", {"name": "alice"})["presence"]["self"]
            bob = make(clients, two)
            b_id = bob.announce("blink", {"name": "bob"})["presence"]["self"]
            alice.wait_event("join", b_id)

            own.stop()
            # While Redis is gone presence answers (with this process's own
            # members) and the server keeps serving.
            error, answer = alice.presence({"state": {"name": "alice", "typing": True}})
            assert error is None
            assert by_id(answer["members"])[a_id]["state"] == {"name": "alice", "typing": True}
            own.start()
            back = time.monotonic()

            # Each process puts back what it holds; the update made during the
            # outage is there too.
            want = {
                a_id: {"id": a_id, "state": {"name": "alice", "typing": True}, "connections": 1},
                b_id: {"id": b_id, "state": {"name": "bob"}, "connections": 1},
            }
            deadline = time.monotonic() + 15
            while True:
                seen = [by_id(c.presence()[1]["members"]) for c in (alice, bob)]
                if seen == [want, want] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert seen == [want, want]
            print(f"members back {time.monotonic() - back:.2f} s after Redis restarted")
            # And changes flow between the processes again.
            bob.presence({"state": {"name": "bob", "back": True}})
            member, _ = alice.wait_event("update", b_id, timeout=5)
            assert member["state"] == {"name": "bob", "back": True}
    finally:
        own.close()


def test_every_socket_hears_the_changes_of_all_processes_in_one_order(auth_cluster, clients):
    one, two = auth_cluster.urls
    watchers = [
        make(clients, url, auth={"token": token(sub=f"w{i}")}) for i, url in enumerate((one, two))
    ]
    for watcher in watchers:
        watcher.listen("race")
    tabs = [make(clients, url, auth={"token": token(sub="racer")}) for url in (one, two)]
    me = tabs[0].announce("race", {"tab": 0, "n": 0})["presence"]["self"]
    tabs[1].announce("race", {"tab": 1, "n": 0})

    def say(tab: int) -> None:
        for n in range(1, 16):
            tabs[tab].presence({"state": {"tab": tab, "n": n}})

    threads = [threading.Thread(target=say, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    tabs[0].presence({"state": None})
    heard = [
        [(kind, m["state"], m["connections"]) for kind, m, _ in w.quiet(1.0) if m["id"] == me]
        for w in watchers
    ]
    assert heard[0] == heard[1]
    assert heard[0][0] == ("join", {"tab": 0, "n": 0}, 1)
    # Replayed, the events end where the members are.
    assert heard[0][-1][0] == "update"
    final = {"id": me, "state": heard[0][-1][1], "connections": heard[0][-1][2]}
    assert final == {"id": me, "state": {"tab": 1, "n": 15}, "connections": 1}
    assert watchers[0].presence()[1]["members"] == [final]


def test_a_process_that_stops_hands_its_members_over_without_flicker(redis_server, clients):
    grace = 3.0
    text = SETTINGS.replace(f"PRESENCE_GRACE = {GRACE}", f"PRESENCE_GRACE = {grace}")
    with ServerCluster(text, redis_url=redis_server.url, processes=3) as servers:
        urls = servers.urls
        watcher = make(clients, urls[0])
        watcher.listen("rolling")
        page = "page-rolling-0123"
        moving = make(clients, urls[1])
        me = moving.announce("rolling", {"name": "dana"}, presence_id=page)["presence"]["self"]
        staying_away = make(clients, urls[1])
        away = staying_away.announce("rolling", {"name": "erin"})["presence"]["self"]
        watcher.wait_event("join", me)
        watcher.wait_event("join", away)
        servers.processes[1].proc.send_signal(signal.SIGTERM)  # a rolling restart
        # dana's page reconnects to another process, as backbone.io.js would.
        again = make(clients, urls[2])
        answer = again.announce("rolling", {"name": "dana"}, presence_id=page)["presence"]
        assert answer["self"] == me
        # erin's does not: erin leaves once the grace period is over, dana never.
        heard = heard_until(watcher, lambda h: away in left(h), grace + TTL + 2)
        heard += watcher.quiet(1.0)
        assert [e for e in heard if e[1]["id"] == me] == []
        assert left(heard) == {away}
        assert watcher.presence()[1]["members"] == [
            {"id": me, "state": {"name": "dana"}, "connections": 1}
        ]
        servers.processes[1].proc.wait(15)


def test_a_redis_outage_longer_than_ttl_and_grace_with_persistence_is_no_leave(
    redis_binary, clients
):
    # Redis keeps its data (AOF): after it, each process finds itself known,
    # and none takes the others for dead although their last beats are older
    # than TTL + grace; the only thing heard is the update made meanwhile.
    own = RedisServer(redis_binary, persistent=True).start()
    try:
        with ServerCluster(SETTINGS, redis_url=own.url, processes=2) as servers:
            one, two = servers.urls
            watcher = make(clients, two)
            watcher.listen("aof")
            alice = make(clients, one)
            a_id = alice.announce("aof", {"name": "alice"})["presence"]["self"]
            bob = make(clients, two)
            b_id = bob.announce("aof", {"name": "bob"})["presence"]["self"]
            heard_until(watcher, lambda h: {m["id"] for _, m, _ in h} >= {a_id, b_id}, 5)

            own.stop()
            error, _ = alice.presence({"state": {"name": "alice", "away": True}})
            assert error is None
            time.sleep(TTL + GRACE + 1)  # the outage outlasts a dead process's bound
            own.start()
            heard = heard_until(watcher, lambda h: len(h) >= 1, 10)
            heard += watcher.quiet(TTL + GRACE + 1.5)
            assert [(kind, m["id"], m["state"]) for kind, m, _ in heard] == [
                ("update", a_id, {"name": "alice", "away": True})
            ]
            assert by_id(watcher.presence()[1]["members"]) == {
                a_id: {"id": a_id, "state": {"name": "alice", "away": True}, "connections": 1},
                b_id: {"id": b_id, "state": {"name": "bob"}, "connections": 1},
            }
    finally:
        own.close()


# -- the store itself, two "processes" in this one -------------------------------


@pytest.fixture
def stores(redis_server: RedisServer) -> Iterator[list[tuple[RedisPresence, list[Any]]]]:
    prefix = f"test:{uuid.uuid4().hex}:presence"
    made = []
    for _ in range(2):
        store = RedisPresence(redis_server.url, prefix=prefix, ttl=TTL, grace=GRACE)
        told: list[Any] = []
        store.start(lambda scope, change, told=told: told.append((scope, change)))
        made.append((store, told))
    yield made
    for store, _ in made:
        store.close()


def settled(told: list[Any], count: int, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(told) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # anything more would arrive now
    return list(told)


def test_concurrent_puts_and_removes_on_two_processes_make_one_join_and_one_leave(stores):
    (a, told_a), (b, told_b) = stores
    scope = ("messages", "race")
    conns = [f"id:conn-{i:04d}" for i in range(32)]
    go = threading.Barrier(len(conns))

    def put(i: int) -> None:
        go.wait()
        (a if i % 2 else b).put(scope, "subject:race", conns[i], {"i": i})

    def remove(i: int) -> None:
        go.wait()
        (a if i % 2 else b).remove(scope, "subject:race", conns[i])

    for work in (put, remove):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(conns))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        if work is put:
            assert a.members(scope) == b.members(scope)
            assert [m["connections"] for m in a.members(scope)] == [len(conns)]
    for told in (told_a, told_b):
        kinds = [change.kind for _, change in settled(told, 2 * len(conns))]
        assert len(kinds) == 2 * len(conns)
        assert kinds[0] == "join" and kinds[-1] == "leave"
        assert kinds.count("join") == 1 and kinds.count("leave") == 1
        counts = [change.member["connections"] for _, change in told]
        assert counts == [*range(1, len(conns) + 1), *range(len(conns) - 1, -1, -1)]
    assert a.members(scope) == b.members(scope) == []


def test_a_remove_by_a_process_that_no_longer_holds_the_connection_changes_nothing(stores):
    (a, told_a), (b, _) = stores
    scope = ("messages", None)
    a.put(scope, "anonymous:x", "id:page-1", {"name": "x"})
    b.put(scope, "anonymous:x", "id:page-1", {"name": "x"})  # reconnected to b: taken over
    a.remove(scope, "anonymous:x", "id:page-1")  # a's grace timer ends
    assert b.members(scope) == [{"id": "anonymous:x", "state": {"name": "x"}, "connections": 1}]
    b.remove(scope, "anonymous:x", "id:page-1")
    assert [change.kind for _, change in settled(told_a, 2)] == ["join", "leave"]
    assert a.members(scope) == []
