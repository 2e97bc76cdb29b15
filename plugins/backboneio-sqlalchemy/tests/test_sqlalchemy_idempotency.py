"""A create retried with its idempotency key after ``kill -9`` before the ack (SQLite, PostgreSQL).

The server is held after the store committed the model (tests/stall_server.py):
either before anyone was notified, or after the other clients were, but
always before the author's ack. The test then kills it with SIGKILL, starts
it again and sends the same create with the same key, as the browser client
does when its ack never came: exactly one model, and one notification at most
(the first attempt's), never a second.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from backboneio.testing.client import BackendClient
from backboneio.testing.server import ServerProcess

STALL_SERVER = str(Path(__file__).parent / "stall_server.py")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.sqlite3'}"
    # A fresh table per test: the backend's table is named after it.
    postgres = request.getfixturevalue("postgres")
    return str(postgres.url)


def kill_9(server: ServerProcess) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    assert server.proc.wait(10) == -signal.SIGKILL
    server.stop()


def held_create(server: ServerProcess, key: str, model: dict[str, Any]) -> BackendClient:
    """Send a keyed create whose ack will never come; return once the server holds it."""
    author = BackendClient(server.url, "todos")
    request = {"method": "create", "model": model, "options": {"idempotencyKey": key}}
    acks: list[Any] = []
    author.sio.emit("sync", request, namespace="/todos", callback=lambda *a: acks.append(a))
    server.wait_for_output("STALLED", timeout=20)
    assert acks == []
    return author


@pytest.mark.parametrize("at", ["notified", "stored"])
def test_a_create_retried_after_kill_9_before_its_ack_is_applied_once(url: str, at: str) -> None:
    key, tag = uuid.uuid4().hex, uuid.uuid4().hex
    model = {"title": "sent once", "tag": tag}
    server = ServerProcess(script=STALL_SERVER, env={"STALL_URL": url, "STALL_AT": at})
    with server:
        with BackendClient(server.url, "todos") as watcher:
            watcher.listen()
            before = watcher.ok("read")
            positions = watcher.last_ack[2]["positions"]
            author = held_create(server, key, model)
            if at == "notified":
                method, notified = watcher.next_synced()
                assert method == "create" and notified["tag"] == tag
            else:
                assert watcher.heard_nothing()
            kill_9(server)
            author.sio.disconnect()
        server.start()
        with (
            BackendClient(server.url, "todos") as retry,
            BackendClient(server.url, "todos") as other,
        ):
            # The other client resumes: the in-memory log died with the process.
            assert other.listen_answer(None, since=positions)["recovered"] is False
            again = retry.ok("create", model, {"idempotencyKey": key})
            assert again["tag"] == tag
            if at == "notified":
                assert again == notified
            models = [m for m in retry.ok("read") if m.get("tag") == tag]
            assert models == [again], models
            assert len(retry.ok("read")) == len(before) + 1
            # The retry was answered from the key: nobody is told a second time.
            assert other.heard_nothing(0.5)


def test_without_the_stores_keys_the_same_retry_makes_a_second_model(tmp_path: Path) -> None:
    # The control experiment: the hub's own table dies with the process, so
    # only the key stored with the model can tell the retry from a new create.
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    key, model = uuid.uuid4().hex, {"tag": uuid.uuid4().hex}
    env = {"STALL_URL": url, "STALL_AT": "stored", "STALL_KEYS": "0"}
    with ServerProcess(script=STALL_SERVER, env=env) as server:
        author = held_create(server, key, model)
        kill_9(server)
        author.sio.disconnect()
        server.env["STALL_AT"] = "nowhere"  # this time the retry runs through
        server.start()
        with BackendClient(server.url, "todos") as retry:
            retry.ok("create", model, {"idempotencyKey": key})
            assert len([m for m in retry.ok("read") if m == {**m, **model}]) == 2


@pytest.mark.postgres
def test_a_retry_of_a_write_that_timed_out_then_landed_gets_its_result_not_a_second_write(
    postgres: Any,
) -> None:
    # Another session holds the row lock past SYNC_TIMEOUT: the author is told
    # Timeout (a 5xx, not remembered), the write lands when the lock goes, and
    # its key lands with it, so the retry is answered from it.
    import psycopg2

    table = f"late_{uuid.uuid4().hex[:8]}"
    entry = {"store": "sqlalchemy", "url": postgres.url, "table": table, "versioned": True}
    settings = f"BACKENDS = {{'todos': {entry!r}}}\nSYNC_TIMEOUT = 1.0\n"
    key = uuid.uuid4().hex
    with (
        ServerProcess(settings) as server,
        BackendClient(server.url, "todos") as author,
        BackendClient(server.url, "todos") as watcher,
    ):
        watcher.listen()
        author.ok("create", {"id": "locked", "n": 0})
        assert watcher.next_synced()[0] == "create"
        locker = psycopg2.connect(
            host="127.0.0.1", port=postgres.port, user=postgres.user, dbname="postgres"
        )
        try:
            with locker.cursor() as cur:
                cur.execute(f'SELECT seq FROM "{table}" WHERE id = %s FOR UPDATE', ('"locked"',))
            error, result = author.sync("update", {"id": "locked", "n": 1}, {"idempotencyKey": key})
            assert result is None and error["error"]["name"] == "Timeout", error
        finally:
            locker.rollback()  # the lock goes: the update lands, late
            locker.close()
        method, landed = watcher.next_synced()
        assert method == "update" and landed == {"id": "locked", "n": 1, "_version": 2}
        assert author.next_synced() == ("update", landed)  # its author is told too
        again = author.ok("update", {"id": "locked", "n": 1}, {"idempotencyKey": key})
        assert again == landed
        assert author.ok("read", {"id": "locked"})["_version"] == 2
        assert watcher.heard_nothing()
        # After a restart only the key stored with the write can answer.
        author.close()
        server.restart()
        with BackendClient(server.url, "todos") as retry:
            assert retry.ok("update", {"id": "locked", "n": 1}, {"idempotencyKey": key}) == landed
            assert retry.ok("read", {"id": "locked"})["_version"] == 2
