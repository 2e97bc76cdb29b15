"""Live queries on every store, under random writes, concurrent writers and faults.

The randomised test is the issue's: 20 subscribers with different queries
(equality, ranges, ``$in``, ``$or``, ``$sort`` + ``$limit`` windows) while
2,000 random writes happen. Each subscriber's window, rebuilt from its ack and
events, must equal the query's window over the test's own record of the data
*after every write* (so no event is missing, extra or misplaced), and at the
end a fresh read of the query from the store.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.proxy import Relay
from tests.support.client import BackendClient
from tests.support.databases import (  # noqa: F401  (fixtures)
    EVERY_STORE,
    postgres_url,
    redis_url,
    store_entry,
)
from tests.support.live import Replay, expected_window, subscribe, until_equal
from tests.support.server import ServerProcess

WRITES = 2000
TAGS = ("a", "b", "c", "d")
QUERIES: list[dict[str, Any]] = [
    {},
    {"done": False},
    {"n": {"$gte": 20, "$lt": 60}},
    {"tag": {"$in": ["a", "b"]}},
    {"$or": [{"tag": "c"}, {"n": {"$gt": 90}}]},
    {"done": False, "$sort": {"n": -1}, "$limit": 5},
    {"$sort": {"n": 1, "tag": -1}, "$limit": 10, "$skip": 3},
    {"tag": {"$nin": ["a"]}, "$sort": {"tag": 1}, "$limit": 7},
    {"$sort": {"at": -1}, "$limit": 20, "$select": ["n"]},
    {"n": {"$ne": 5}, "done": True, "$skip": 2},
]


@pytest.fixture(scope="module", params=EVERY_STORE)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    entry = store_entry(request, tmp_path_factory, "live")
    with ServerProcess(f"BACKENDS = {{'todos': {entry!r}}}\n") as srv:
        yield srv


@pytest.fixture
def writer(server: ServerProcess) -> Iterator[BackendClient]:
    with BackendClient(server.url, "todos") as client:
        for model in client.ok("read"):  # each test starts from an empty backend
            client.ok("delete", {"id": model["id"]})
        yield client


def fresh_read(client: BackendClient, data: dict[str, Any]) -> list[Any]:
    if "$sort" not in data:
        data = {**data, "$sort": {"id": 1}}
    return list(client.ok("read", {}, {"data": data}))


def random_model(rng: random.Random) -> dict[str, Any]:
    model: dict[str, Any] = {"tag": rng.choice(TAGS), "done": rng.random() < 0.4}
    if rng.random() < 0.9:  # sometimes no n: it sorts first, matches no comparison
        model["n"] = rng.randrange(100)
    model["at"] = rng.random()
    return model


def test_twenty_windows_follow_two_thousand_random_writes(
    server: ServerProcess, writer: BackendClient
) -> None:
    rng = random.Random(12)
    data: dict[Any, Any] = {}  # id -> the model as the store answered it
    for _ in range(40):
        model = writer.ok("create", random_model(rng))
        data[model["id"]] = model
    subscribers = [BackendClient(server.url, "todos") for _ in range(10)]
    try:
        # Two sockets per query (one window shared between them), each its own id.
        windows: list[tuple[BackendClient, Replay, dict[str, Any]]] = []
        for i, query in enumerate(QUERIES * 2):
            client = subscribers[i % len(subscribers)]
            windows.append((client, subscribe(client, f"q{i}", query), query))
        start = {replay.seq for _, replay, _ in windows}
        assert len(start) == 1, start  # subscribed before any write: one position
        expected: dict[int, list[list[Any]]] = {start.pop(): wanted(data)}

        for _ in range(WRITES):
            ids = list(data)
            action = rng.random()
            # As many creates as deletes: about 40 models all along, so that
            # $limit windows keep pushing models out and pulling them in.
            if not ids or action < 0.25:
                model = writer.ok("create", random_model(rng))
            elif action < 0.5:
                model = writer.ok("update", {**random_model(rng), "id": rng.choice(ids)})
            elif action < 0.75:
                changes = {k: v for k, v in random_model(rng).items() if rng.random() < 0.5}
                model = writer.ok("patch", {**changes, "id": rng.choice(ids)})
            else:
                victim = rng.choice(ids)
                writer.ok("delete", {"id": victim})
                del data[victim]
                model = None
            if model is not None:
                data[model["id"]] = model
            expected[max(expected) + 1] = wanted(data)

        last = max(expected)
        by_client: dict[int, dict[str, tuple[Replay, int]]] = {}
        for index, (client, replay, _) in enumerate(windows):
            by_client.setdefault(id(client), {})[replay.id] = (replay, index)
        for client in subscribers:
            check_every_step(client, by_client[id(client)], expected, last)
        for _, replay, query in windows:
            assert replay.models == fresh_read(writer, query), query
        assert sum(replay.events for _, replay, _ in windows) > WRITES  # not all quiet
    finally:
        for client in subscribers:
            client.close()


def wanted(data: dict[Any, Any]) -> list[list[Any]]:
    models = list(data.values())
    windows = [expected_window(models, query) for query in QUERIES]
    return windows * 2  # QUERIES * 2 subscriptions


def check_every_step(
    client: BackendClient,
    replays: dict[str, tuple[Replay, int]],
    expected: dict[int, list[list[Any]]],
    last: int,
) -> None:
    """Apply the client's events write by write; after each write every window is right."""
    checked = {sub_id: replay.seq for sub_id, (replay, _) in replays.items()}

    def settle(sub_id: str, upto: int) -> None:
        replay, index = replays[sub_id]
        for seq in range(checked[sub_id], upto):
            assert replay.models == expected[seq][index], (sub_id, seq)
        checked[sub_id] = upto

    while True:
        pending = [sub for sub, (replay, _) in replays.items() if checked[sub] <= last]
        if not pending:
            return
        try:
            sub_id, kind, model, meta = client.queries.get(timeout=1)
        except Exception:
            # No more events: every window must have been right ever since its last one.
            for sub in pending:
                settle(sub, last + 1)
            return
        settle(sub_id, meta["seq"])  # nothing changed it before this write
        replays[sub_id][0].apply(kind, model, meta)


def test_a_window_taken_while_others_write_loses_and_doubles_nothing(
    server: ServerProcess, writer: BackendClient
) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with BackendClient(server.url, "todos") as client:
                mine: list[Any] = []
                while not stop.is_set():
                    if mine and rng.random() < 0.3:
                        client.ok("patch", {"id": rng.choice(mine), "n": rng.randrange(100)})
                    elif mine and rng.random() < 0.1:
                        client.ok("delete", {"id": mine.pop()})
                    else:
                        mine.append(client.ok("create", random_model(rng))["id"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    query = {"n": {"$lt": 50}, "$sort": {"n": 1}, "$limit": 15}
    subs = []
    try:
        for i in range(6):  # each subscribes in the middle of the writes
            client = BackendClient(server.url, "todos")
            subs.append((client, subscribe(client, f"late{i}", query)))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    final = fresh_read(writer, query)
    for client, replay in subs:
        until_equal(client, replay, final)  # Replay refuses a doubled enter on the way
        client.close()


@pytest.mark.single_process
def test_a_resubscription_after_a_cut_is_the_store_s_window(
    server: ServerProcess, writer: BackendClient
) -> None:
    query = {"done": False, "$sort": {"n": 1}, "$limit": 5}
    for n in range(8):
        writer.ok("create", {"n": n, "done": False, "tag": "a"})
    relay = Relay(server.port)
    client = BackendClient(relay.url, "todos")
    try:
        subscribe(client, "cut", query)
        relay.cut()  # the network drops: the server sees the socket go
        for model in fresh_read(writer, query)[:3]:
            writer.ok("patch", {"id": model["id"], "done": True})
        writer.ok("create", {"n": -1, "done": False, "tag": "b"})
        client.close()
        relay.restore()
        client = BackendClient(relay.url, "todos")
        again = subscribe(client, "cut", query)  # the same id: a fresh window
        assert again.models == fresh_read(writer, query)
        assert again.models[0]["n"] == -1
        writer.ok("create", {"n": -2, "done": False, "tag": "c"})
        until_equal(client, again, fresh_read(writer, query))
    finally:
        client.close()
        relay.close()


@pytest.mark.single_process
def test_after_the_server_is_killed_a_resubscription_is_the_store_s_window(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'kill.sqlite3'}"
    query = {"tag": "a", "$sort": {"n": -1}, "$limit": 3}
    settings = f"BACKENDS = {{'todos': {{'store': 'sqlalchemy', 'url': {url!r}}}}}\n"
    with ServerProcess(settings) as srv:
        with BackendClient(srv.url, "todos") as client:
            for n in range(5):
                client.ok("create", {"n": n, "tag": "a"})
            window = subscribe(client, "k", query)
            assert [m["n"] for m in window.models] == [4, 3, 2]
        assert srv.proc is not None
        srv.proc.kill()  # -9: no shutdown, no goodbye
        srv.proc.wait()
        srv.restart()
        with BackendClient(srv.url, "todos") as client, BackendClient(srv.url, "todos") as w:
            w.ok("create", {"n": 10, "tag": "a"})
            again = subscribe(client, "k", query)
            assert [m["n"] for m in again.models] == [10, 4, 3]
            w.ok("create", {"n": 7, "tag": "a"})
            until_equal(client, again, fresh_read(w, query))
            assert [m["n"] for m in again.models] == [10, 7, 4]
