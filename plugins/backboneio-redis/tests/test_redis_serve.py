"""``backboneio serve`` with the redis store, the shared change log and (with
``REDIS_CHANGE_LOG = False``) the pub/sub client manager, over real sockets."""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from backboneio.testing.client import BackendClient
from backboneio.testing.server import ServerProcess

pytestmark = pytest.mark.redis


def settings_for(
    url: str,
    *,
    prefix: str | None = None,
    manager: str | None = None,
    channel: str = "backboneio",
    change_log: bool = True,
) -> str:
    """Settings with a redis-store backend on ``url`` and, if given, processes
    sharing ``manager``: through the change log, or pub/sub without it."""
    prefix = prefix or f"test:{uuid.uuid4().hex}"
    # Only this plugin: the tests here are about the store and the manager.
    text = 'PLUGINS = ["redis"]\n'
    backends = {"messages": {"store": "redis", "url": url, "prefix": prefix}}
    text += f"BACKENDS = {backends!r}\n"
    if manager:
        text += f"REDIS_MANAGER_URL = {manager!r}\nREDIS_MANAGER_CHANNEL = {channel!r}\n"
        text += f"REDIS_CHANGE_LOG = {change_log!r}\n"
    return text


def test_plugins_command_lists_the_redis_plugin() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "backboneio", "plugins"], capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("redis "))
    assert "register_stores" in line and "client_manager" in line and "change_log" in line


def test_serve_syncs_through_the_redis_store_and_keeps_models_across_restarts(
    redis_server: Any,
) -> None:
    with ServerProcess(settings_for(redis_server.url)) as srv:
        with BackendClient(srv.url, "messages") as alice, BackendClient(srv.url, "messages") as bob:
            alice.listen()
            bob.listen()
            created = alice.ok("create", {"text": "hello"})
            assert bob.next_synced() == ("create", created)
            patched = alice.ok("patch", {"id": created["id"], "read": True})
            assert patched == {**created, "read": True}
            assert bob.next_synced() == ("patch", patched)
            assert bob.ok("read", {}, {"data": {"read": True}}) == [patched]
        srv.restart()
        with BackendClient(srv.url, "messages") as carol:
            assert carol.ok("read", {"id": created["id"]}) == patched
            assert carol.ok("delete", {"id": created["id"]}) == patched
            error, _ = carol.sync("read", {"id": created["id"]})
            assert error["error"]["name"] == "NotFound"


def test_serve_answers_bad_ids_and_queries_clearly_and_keeps_serving(redis_server: Any) -> None:
    with (
        ServerProcess(settings_for(redis_server.url)) as srv,
        BackendClient(srv.url, "messages") as alice,
        BackendClient(srv.url, "messages") as bob,
    ):
        bob.listen()
        error, result = alice.sync("create", {"id": [1, 2], "text": "x"})
        assert result is None and error["error"]["name"] == "BadRequest"
        assert "id must be a string or an integer" in error["error"]["message"]
        error, _ = alice.sync("read", {}, {"data": {"$where": "1"}})
        assert error["error"]["name"] == "BadRequest" and "$where" in error["error"]["message"]
        assert bob.heard_nothing()
        assert alice.ok("read") == []
        assert alice.ok("create", {"id": 1})["id"] == 1


def test_redis_down_answers_unavailable_broadcasts_nothing_and_recovers(
    own_redis_server: Any,
) -> None:
    settings = settings_for(own_redis_server.url) + 'BACKENDS["messages"]["timeout"] = 2\n'
    with (
        ServerProcess(settings) as srv,
        BackendClient(srv.url, "messages") as alice,
        BackendClient(srv.url, "messages") as bob,
    ):
        bob.listen()
        alice.ok("create", {"id": 1})
        assert bob.next_synced()[0] == "create"

        own_redis_server.stop()
        for method, model in [
            ("create", {"id": 2}),
            ("patch", {"id": 1, "a": 1}),
            ("update", {"id": 1}),
            ("delete", {"id": 1}),
            ("read", {}),
        ]:
            error, result = alice.sync(method, model)
            assert result is None
            assert error["error"]["name"] == "Unavailable" and error["error"]["status"] == 503
            text = repr(error)
            assert own_redis_server.password not in text and "redis" not in text.lower()
            assert str(own_redis_server.port) not in text and "stack" not in error["error"]
        assert bob.heard_nothing()
        assert own_redis_server.password not in srv.log

        own_redis_server.start()
        assert alice.ok("create", {"id": 3}) == {"id": 3}
        assert bob.next_synced() == ("create", {"id": 3})


def test_a_bad_manager_url_stops_start_up_without_showing_the_password() -> None:
    settings = 'REDIS_MANAGER_URL = "http://user:hunter2@127.0.0.1:1/"\n'
    with pytest.raises(RuntimeError) as caught, ServerProcess(settings):
        pass
    message = str(caught.value)
    assert "REDIS_MANAGER_URL" in message and "hunter2" not in message


def bridge(sender: BackendClient, receiver: BackendClient) -> None:
    """Wait until ``receiver``'s process hears ``sender``'s through Redis.

    With pub/sub, each process subscribes in the background once its first
    client connects; until then a broadcast is not delivered there, so keep
    sending until one arrives (bounded, no timing asserts). With the change
    log the first probe already arrives: each reader starts with its server.
    """
    sender.listen("bridge")
    receiver.listen("bridge")
    for attempt in range(150):
        sender.ok("create", {"probe": attempt})
        if not receiver.heard_nothing(wait=0.2):
            break
    else:
        raise AssertionError("the two processes never heard each other through Redis")
    while not receiver.heard_nothing(wait=0.3):
        receiver.next_synced()


def test_two_processes_share_broadcasts_through_redis(redis_server: Any) -> None:
    settings = settings_for(
        redis_server.url, manager=redis_server.url, channel=f"test-{uuid.uuid4().hex}"
    )
    with (
        ServerProcess(settings) as first,
        ServerProcess(settings) as second,
        BackendClient(first.url, "messages") as alice,
        BackendClient(second.url, "messages") as bob,
    ):
        bridge(alice, bob)
        alice.listen()
        bob.listen()
        created = alice.ok("create", {"text": "from the first process"})
        assert bob.next_synced() == ("create", created)
        # Every process delivers from the shared log and skips the sender,
        # who learns from its answer: nothing arrives twice.
        assert alice.heard_nothing()
        # The model is in the shared store too, so bob can change it.
        patched = bob.ok("patch", {"id": created["id"], "seen": True})
        assert alice.next_synced() == ("patch", patched)


def test_channels_reach_across_processes(redis_server: Any) -> None:
    settings = settings_for(
        redis_server.url, manager=redis_server.url, channel=f"test-{uuid.uuid4().hex}"
    )
    with (
        ServerProcess(settings) as first,
        ServerProcess(settings) as second,
        BackendClient(first.url, "messages") as alice,
        BackendClient(second.url, "messages") as bob,
        BackendClient(second.url, "messages") as carol,
    ):
        bridge(alice, bob)
        alice.listen("a")
        bob.listen("a")
        carol.listen("b")
        created = alice.ok("create", {"text": "for channel a"})
        assert bob.next_synced() == ("create", created)
        assert carol.heard_nothing()
        # carol's process is subscribed: a write on "b" does reach her.
        alice.listen("b")
        other = alice.ok("create", {"text": "for channel b"})
        assert carol.next_synced() == ("create", other)
        assert bob.heard_nothing()


def test_without_a_manager_url_processes_stay_apart(redis_server: Any) -> None:
    settings = settings_for(redis_server.url)
    with (
        ServerProcess(settings) as first,
        ServerProcess(settings) as second,
        BackendClient(first.url, "messages") as alice,
        BackendClient(second.url, "messages") as bob,
    ):
        alice.listen()
        bob.listen()
        created = alice.ok("create", {"text": "only here"})
        assert bob.heard_nothing(wait=1.0)
        # ...although they share the store.
        assert bob.ok("read", {"id": created["id"]}) == created


def test_serve_starts_while_redis_is_down_and_serves_once_it_is_up(
    own_redis_server: Any,
) -> None:
    own_redis_server.stop()
    with ServerProcess(settings_for(own_redis_server.url)) as srv:
        assert "is unreachable" in srv.log and own_redis_server.password not in srv.log
        with BackendClient(srv.url, "messages") as alice:
            error, _ = alice.sync("create", {"id": 1})
            assert error["error"]["name"] == "Unavailable"
            own_redis_server.start()
            assert alice.ok("create", {"id": 1}) == {"id": 1}


def test_a_wrong_redis_password_stops_start_up_without_showing_it(
    own_redis_server: Any,
) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{own_redis_server.port}/0"
    with pytest.raises(RuntimeError) as caught, ServerProcess(settings_for(url)):
        pass
    message = str(caught.value)
    assert "refused to log in" in message and "messages" in message
    assert "not-the-password" not in message


def test_without_the_change_log_pub_sub_misses_what_is_sent_while_redis_is_down(
    redis_server: Any, own_redis_server: Any
) -> None:
    # The 0.4 behaviour, kept behind REDIS_CHANGE_LOG = False; with the log a
    # write is refused instead (test_redis_cluster.py).
    settings = settings_for(redis_server.url, manager=own_redis_server.url, change_log=False)
    with (
        ServerProcess(settings) as first,
        ServerProcess(settings) as second,
        BackendClient(first.url, "messages") as alice,
        BackendClient(first.url, "messages") as dave,
        BackendClient(second.url, "messages") as bob,
    ):
        bridge(alice, bob)
        for client in (alice, dave, bob):
            client.listen()

        own_redis_server.stop()
        created = alice.ok("create", {"text": "while pub/sub is down"})
        assert dave.next_synced() == ("create", created)
        assert bob.heard_nothing(wait=1.0)

        own_redis_server.start()
        # Each process resubscribes by itself (python-socketio retries).
        bridge(alice, bob)
        for client in (alice, bob):
            client.listen()
        again = alice.ok("create", {"text": "pub/sub is back"})
        assert bob.next_synced() == ("create", again)
        assert own_redis_server.password not in first.log + second.log


def test_a_sync_waiting_on_redis_does_not_hold_up_other_clients(own_redis_server: Any) -> None:
    settings = settings_for(own_redis_server.url) + (
        'BACKENDS["messages"]["timeout"] = 60\nBACKENDS["notes"] = {"store": "memory"}\n'
    )
    admin = own_redis_server.client()
    with (
        ServerProcess(settings) as srv,
        BackendClient(srv.url, "messages") as alice,
        BackendClient(srv.url, "notes") as bob,
    ):
        alice.ok("read")  # the store's connection is open before Redis pauses
        # WRITE mode: scripts wait, while CLIENT UNPAUSE still gets through.
        admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        try:
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(alice.sync, "create", {"id": "paused"})
                # Redis holds alice's create; the same server process answers
                # bob meanwhile, because redis-py's socket is cooperative.
                assert bob.ok("create", {"id": "n1"}) == {"id": "n1"}
                assert not waiting.done()
                admin.execute_command("CLIENT", "UNPAUSE")
                assert waiting.result(timeout=30) == (None, {"id": "paused"})
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
            admin.close()
