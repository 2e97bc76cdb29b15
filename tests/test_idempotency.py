"""Idempotent retries over the wire (docs/idempotency.md): real clients, a real server.

A write sent again with the same ``options.idempotencyKey`` gets the first
answer, is not applied again and is not notified again; the same key for
another write is refused; a malformed key is a BadRequest and the server
keeps serving. On every store: the memory store runs in the caller's green
thread, the others in threads or sockets of their own, so same-key requests
really overlap. With ``--cluster N`` (tests/cluster-suite.txt) each server is
N processes on one Redis store, so a retry and the concurrent sends reach
other processes than the first attempt did.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
from backboneio.idempotency import IdempotencyKey, KeyTable, fingerprint, identity_scope

from tests.support.client import BackendClient
from tests.support.databases import (  # noqa: F401  (fixtures)
    EVERY_STORE,
    postgres_url,
    redis_url,
    store_entry,
)
from tests.support.server import ServerProcess

SECRET = "idempotency-test-secret-" + "k" * 40
WRITERS = 6


# A middleware whose first attempt at each key fails with a 5xx: Unavailable,
# or a ServerError (an exception) for keys starting with "boom". A file per
# key remembers the attempt, so every process of a --cluster run agrees.
FLAKY = """
import os
from backboneio import Unavailable

def fail_first_attempt(req, res, next):
    key = req.options.get("idempotencyKey")
    mark = os.path.join({marks!r}, str(key))
    if req.method != "read" and not os.path.exists(mark):
        open(mark, "w").close()
        if str(key).startswith("boom"):
            raise RuntimeError("the first attempt breaks")
        raise Unavailable("down for a moment")
    next()
"""


def keyed(key: str) -> dict[str, Any]:
    return {"idempotencyKey": key}


def new_key() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module", params=EVERY_STORE)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Each backend's table (or key prefix) is its own.
    backends = {
        name: store_entry(request, tmp_path_factory, "keys") for name in ("todos", "notes", "flaky")
    }
    marks = tmp_path_factory.mktemp("failed")
    settings = FLAKY.format(marks=str(marks)) + f"BACKENDS = {backends!r}\n"
    settings += "BACKENDS['flaky']['middleware'] = [__name__ + '.fail_first_attempt']\n"
    with ServerProcess(settings) as srv:
        yield srv


@pytest.fixture
def pair(server: Any) -> Iterator[tuple[BackendClient, BackendClient]]:
    """A writer and a watcher that listens on the backend."""
    writer, watcher = BackendClient(server.url, "todos"), BackendClient(server.url, "todos")
    try:
        watcher.listen()
        yield writer, watcher
    finally:
        writer.close()
        watcher.close()


def count(client: BackendClient, **attributes: Any) -> int:
    models = client.ok("read")
    return sum(all(m.get(k) == v for k, v in attributes.items()) for m in models)


def test_a_repeated_create_gets_the_first_answer_and_is_not_notified_again(
    pair: tuple[BackendClient, BackendClient],
) -> None:
    writer, watcher = pair
    key, tag = new_key(), new_key()
    first = writer.sync("create", {"title": "milk", "tag": tag}, keyed(key))
    error, created = first
    assert error is None and created["title"] == "milk"
    assert watcher.next_synced() == ("create", created)
    for _ in range(3):
        assert writer.sync("create", {"title": "milk", "tag": tag}, keyed(key)) == first
    assert watcher.heard_nothing()
    assert count(writer, tag=tag) == 1


def test_a_retry_on_a_new_connection_gets_the_first_answer(
    server: Any, pair: tuple[BackendClient, BackendClient]
) -> None:
    # The lost-ack case: the page reconnects and sends the write again.
    writer, watcher = pair
    key, tag = new_key(), new_key()
    created = writer.ok("create", {"tag": tag}, keyed(key))
    writer.close()
    with BackendClient(server.url, "todos") as again:
        assert again.ok("create", {"tag": tag}, keyed(key)) == created
        assert watcher.next_synced() == ("create", created)
        assert watcher.heard_nothing()
        assert count(again, tag=tag) == 1


@pytest.mark.parametrize("method", ["update", "patch", "delete"])
def test_a_repeated_write_is_not_applied_over_a_later_one(
    pair: tuple[BackendClient, BackendClient], method: str
) -> None:
    writer, watcher = pair
    created = writer.ok("create", {"n": 0})
    key = new_key()
    first = writer.sync(method, {"id": created["id"], "n": 1}, keyed(key))
    assert first[0] is None, first
    later = writer.ok("create" if method == "delete" else "update", {"id": created["id"], "n": 2})
    assert [m for m, _ in (watcher.next_synced() for _ in range(3))] == [
        "create",
        method,
        "create" if method == "delete" else "update",
    ]
    assert writer.sync(method, {"id": created["id"], "n": 1}, keyed(key)) == first
    assert watcher.heard_nothing()
    assert writer.ok("read", {"id": created["id"]}) == later


def test_a_4xx_answer_is_the_answer_to_every_repeat(
    pair: tuple[BackendClient, BackendClient],
) -> None:
    writer, watcher = pair
    key, ghost = new_key(), new_key()
    first = writer.sync("patch", {"id": ghost, "n": 1}, keyed(key))
    assert first[1] is None and first[0]["error"]["name"] == "NotFound"
    writer.ok("create", {"id": ghost, "n": 0})
    assert watcher.next_synced()[0] == "create"
    assert writer.sync("patch", {"id": ghost, "n": 1}, keyed(key)) == first
    assert writer.ok("read", {"id": ghost}) == {"id": ghost, "n": 0}
    assert watcher.heard_nothing()


def test_the_same_key_for_another_write_is_refused_and_nothing_is_written(
    pair: tuple[BackendClient, BackendClient],
) -> None:
    writer, watcher = pair
    key, tag = new_key(), new_key()
    created = writer.ok("create", {"title": "a", "tag": tag}, keyed(key))
    watcher.next_synced()
    for method, model in [
        ("create", {"title": "b", "tag": tag}),
        ("update", {**created, "title": "b"}),
        ("delete", {"id": created["id"]}),
    ]:
        error, result = writer.sync(method, model, keyed(key))
        assert result is None
        assert error["error"]["name"] == "IdempotencyKeyReused", error
        assert error["error"]["status"] == 422
        assert error["error"]["idempotencyKey"] == key
        assert "new key" in error["error"]["message"]
    assert watcher.heard_nothing()
    assert writer.ok("read", {"id": created["id"]}) == created
    assert count(writer, tag=tag) == 1


@pytest.mark.parametrize(
    "bad",
    ["", "k" * 129, 42, True, ["a"], {"key": "a"}],
    ids=["empty", "129-characters", "number", "true", "list", "object"],
)
def test_a_malformed_key_is_a_bad_request_and_the_server_keeps_serving(
    pair: tuple[BackendClient, BackendClient], bad: Any
) -> None:
    writer, watcher = pair
    tag = new_key()
    error, result = writer.sync("create", {"tag": tag}, {"idempotencyKey": bad})
    assert result is None
    assert error["error"]["name"] == "BadRequest"
    assert error["error"]["field"] == "idempotencyKey"
    assert "idempotencyKey must be a string of 1 to 128 characters" in error["error"]["message"]
    assert watcher.heard_nothing()
    assert count(writer, tag=tag) == 0
    # Both sockets keep working, with or without a key.
    created = writer.ok("create", {"tag": tag}, keyed(new_key() * 4))  # 128 characters
    assert watcher.next_synced() == ("create", created)
    assert watcher.ok("create", {"tag": tag})["tag"] == tag


def test_a_key_of_null_is_no_key(pair: tuple[BackendClient, BackendClient]) -> None:
    writer, _ = pair
    tag = new_key()
    writer.ok("create", {"tag": tag}, {"idempotencyKey": None})
    writer.ok("create", {"tag": tag}, {"idempotencyKey": None})
    assert count(writer, tag=tag) == 2


def test_keys_are_scoped_per_backend(server: Any) -> None:
    key, tag = new_key(), new_key()
    with BackendClient(server.url, "todos") as todos, BackendClient(server.url, "notes") as notes:
        a = todos.ok("create", {"tag": tag}, keyed(key))
        b = notes.ok("create", {"tag": tag}, keyed(key))
        assert a["id"] != b["id"]
        assert count(todos, tag=tag) == 1 and count(notes, tag=tag) == 1


def test_concurrent_sends_of_one_key_make_one_model_and_one_notification(server: Any) -> None:
    key, tag = new_key(), new_key()
    writers = [BackendClient(server.url, "todos") for _ in range(WRITERS)]
    watcher = BackendClient(server.url, "todos")
    try:
        watcher.listen()

        def send(client: BackendClient) -> Any:
            return client.sync("create", {"tag": tag}, keyed(key))

        with ThreadPoolExecutor(WRITERS) as pool:
            answers = list(pool.map(send, writers))
        assert all(error is None for error, _ in answers), answers
        assert len({result["id"] for _, result in answers}) == 1, answers
        assert watcher.next_synced() == ("create", answers[0][1])
        assert watcher.heard_nothing()
        assert count(watcher, tag=tag) == 1
    finally:
        for client in [*writers, watcher]:
            client.close()


@pytest.mark.parametrize(("prefix", "name"), [("", "Unavailable"), ("boom-", "ServerError")])
def test_a_first_attempt_that_failed_with_a_5xx_is_not_remembered(
    server: Any, prefix: str, name: str
) -> None:
    key, tag = prefix + new_key(), new_key()
    with (
        BackendClient(server.url, "flaky") as writer,
        BackendClient(server.url, "flaky") as watcher,
    ):
        watcher.listen()
        error, result = writer.sync("create", {"tag": tag}, keyed(key))
        assert result is None and error["error"]["name"] == name
        assert error["error"]["status"] >= 500
        assert count(writer, tag=tag) == 0
        # The retry runs, and from then on the key answers it.
        created = writer.ok("create", {"tag": tag}, keyed(key))
        assert watcher.next_synced() == ("create", created)
        assert writer.ok("create", {"tag": tag}, keyed(key)) == created
        assert watcher.heard_nothing()
        assert count(writer, tag=tag) == 1


# -- identities ------------------------------------------------------------------


def mint(sub: str, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300, **claims}, SECRET, "HS256")


@pytest.fixture(scope="module")
def token_server() -> Iterator[Any]:
    settings = (
        'PLUGINS = ["backboneio-token-auth"]\n'
        f"TOKEN_AUTH_SECRET = {SECRET!r}\n"
        "BACKENDS = {'todos': {'store': 'memory'}}\n"
    )
    with ServerProcess(settings) as srv:
        yield srv


def test_keys_are_scoped_per_identity_and_survive_a_new_token(token_server: Any) -> None:
    key, tag = new_key(), new_key()
    url = token_server.url
    with BackendClient(url, "todos", auth={"token": mint("ann")}) as ann:
        mine = ann.ok("create", {"tag": tag}, keyed(key))
    with BackendClient(url, "todos", auth={"token": mint("bob")}) as bob:
        # Another person's key is another key: bob's write runs.
        theirs = bob.ok("create", {"tag": tag}, keyed(key))
        assert theirs["id"] != mine["id"]
    # Ann again, with a new token (another iat and exp): still her key.
    with BackendClient(url, "todos", auth={"token": mint("ann", role="x")}) as ann:
        assert ann.ok("create", {"tag": tag}, keyed(key)) == mine
        assert count(ann, tag=tag) == 2


# -- the rules as plain functions --------------------------------------------------


def test_the_fingerprint_is_the_method_and_the_model_whatever_their_key_order() -> None:
    assert fingerprint("create", {"a": 1, "b": [1, {"x": 2, "y": 3}]}) == fingerprint(
        "create", {"b": [1, {"y": 3, "x": 2}], "a": 1}
    )
    assert fingerprint("create", {"a": 1}) != fingerprint("update", {"a": 1})
    assert fingerprint("create", {"a": 1}) != fingerprint("create", {"a": 1.5})
    assert fingerprint("create", {"n": 2**70}) != fingerprint("create", {"n": 2**70 + 1})


class User:
    def __init__(self, id: Any) -> None:
        self.id = id


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ({"sub": "ann", "exp": 1}, {"sub": "ann", "exp": 2, "role": "x"}, True),  # a new token
        ({"sub": "ann"}, {"sub": "bob"}, False),
        ({"id": 7, "name": "Ann"}, {"id": 7, "name": "Ann B."}, True),
        (User(7), User(7), True),
        (User(7), User("7"), False),
        ("ann", "ann", True),
        ("ann", "bob", False),
        (None, None, True),
        (None, "", False),
    ],
)
def test_the_identity_scope_is_who_not_which_credential(
    first: Any, second: Any, same: bool
) -> None:
    assert (identity_scope(first) == identity_scope(second)) is same


def test_the_process_table_keeps_the_newest_answers() -> None:
    table = KeyTable(max_keys=2)

    def key(name: str) -> IdempotencyKey:
        return IdempotencyKey("b", "", name, "create", "fp", time.time() + 60)

    for name in ("one", "two", "three"):
        assert table.claim(key(name)) is None  # this request's to run
        table.finish(key(name), {"result": name})
    assert len(table) == 2
    assert table.claim(key("three")) == {"result": "three"}
    assert table.claim(key("one")) is None  # forgotten: it runs again
