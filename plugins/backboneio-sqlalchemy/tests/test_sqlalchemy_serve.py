"""The sqlalchemy store behind a real ``backboneio serve`` process, over WebSocket."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import socketio
import sqlalchemy as sa
from backboneio.testing.client import BackendClient
from backboneio.testing.server import ServerProcess

# Reading this view keeps SQLite busy in C for a good second: a long query
# that no Python code interrupts.
SQLITE_SLOW_VIEW = """
CREATE VIEW slow_things AS
WITH RECURSIVE counter(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM counter WHERE x < 6000000)
SELECT 'only' AS id, count(*) AS n FROM counter
"""
POSTGRES_SLOW_VIEW = """
CREATE VIEW {name} AS SELECT 'only'::text AS id, 1 AS n FROM pg_sleep(1.5)
"""


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def settings_for(backends: dict[str, dict[str, Any]], **extra: Any) -> str:
    lines = [f"BACKENDS = {backends!r}"]
    lines += [f"{name} = {value!r}" for name, value in extra.items()]
    return "\n".join(lines) + "\n"


def answer_order(url: str, slow: str, fast: str) -> list[str]:
    """Send a slow read on ``slow``, then a create on ``fast``; the order of the answers.

    Both go over ONE connection (a namespace each), so the answers arrive in
    the order the server sent them.
    """
    sio = socketio.Client(reconnection=False)
    answered: list[str] = []
    both = threading.Event()

    def answer(name: str) -> Any:
        def callback(error: Any, result: Any, *extra: Any) -> None:  # a read adds positions
            answered.append(name if error is None else f"{name} failed: {error}")
            if len(answered) == 2:
                both.set()

        return callback

    def sync(backend: str, method: str, model: dict[str, Any], name: str) -> None:
        request = {"method": method, "model": model, "options": {}}
        sio.emit("sync", request, namespace=f"/{backend}", callback=answer(name))

    sio.connect(url, namespaces=[f"/{slow}", f"/{fast}"], transports=["websocket"], wait_timeout=10)
    try:
        # the fast backend's table exists and its pool is warm
        sio.call(
            "sync", {"method": "read", "model": {}, "options": {}}, namespace=f"/{fast}", timeout=10
        )
        sync(slow, "read", {}, "slow")
        # Not a timing assertion: only gives the slow read a head start so it
        # is inside the database when the fast request arrives.
        time.sleep(0.4)
        sync(fast, "create", {"title": "quick"}, "fast")
        assert both.wait(30), answered
    finally:
        sio.disconnect()
    return answered


# -- end to end -----------------------------------------------------------------


def test_serve_keeps_models_in_sqlite_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    settings = settings_for({"todos": {"store": "sqlalchemy", "url": url}})
    with ServerProcess(settings) as server:
        with BackendClient(server.url, "todos") as alice, BackendClient(server.url, "todos") as bob:
            bob.listen()
            created = alice.ok("create", {"title": "milk", "done": False})
            assert bob.next_synced() == ("create", created)
            alice.ok("patch", {"id": created["id"], "done": True})
            assert bob.next_synced()[0] == "patch"
        server.restart()
        with BackendClient(server.url, "todos") as carol:
            assert carol.ok("read") == [{"id": created["id"], "title": "milk", "done": True}]
            assert carol.ok("read", {}, {"data": {"done": True, "$select": ["title"]}}) == [
                {"id": created["id"], "title": "milk"}
            ]
    # A document table anyone can read with plain SQL.
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT json_extract(body, '$.title') FROM todos").all() == [
            ("milk",)
        ]
    engine.dispose()


def test_serve_uses_the_sqlalchemy_url_setting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    settings = settings_for(
        {"a": {"store": "sqlalchemy"}, "b": {"store": "sqlalchemy", "table": "bees"}},
        SQLALCHEMY_URL=url,
    )
    with ServerProcess(settings) as server, BackendClient(server.url, "a") as a:
        a.ok("create", {"id": 1})
        with BackendClient(server.url, "b") as b:
            b.ok("create", {"id": 2})
    assert sorted(sa.inspect(sa.create_engine(url)).get_table_names()) == [
        "a",
        "a_idempotency",  # idempotency keys, kept in the write's transaction
        "bees",
        "bees_idempotency",
    ]


def test_demo_keeps_its_models_in_a_sqlite_file_in_the_working_directory() -> None:
    with ServerProcess(None, args=("--demo",)) as server:
        with BackendClient(server.url, "todos") as client:
            created = client.ok("create", {"title": "from the demo"})
        assert (Path(server._dir.name) / "backboneio.sqlite3").exists()
        server.restart()
        with BackendClient(server.url, "todos") as client:
            assert created in client.ok("read")


def test_unknown_store_option_stops_start_up(tmp_path: Path) -> None:
    settings = settings_for({"todos": {"store": "sqlalchemy", "tabel": "x"}})
    with pytest.raises(RuntimeError) as info, ServerProcess(settings):
        pass
    assert "tabel" in str(info.value) and "url" in str(info.value)


# -- the event loop keeps serving during a slow query ---------------------------


def test_a_slow_sqlite_query_does_not_hold_up_other_clients(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    run_sql(url, SQLITE_SLOW_VIEW)
    settings = settings_for(
        {
            "slow": {"store": "sqlalchemy", "url": url, "table": "slow_things", "reflect": True},
            "fast": {"store": "sqlalchemy", "url": url},
        }
    )
    with ServerProcess(settings) as server:
        assert answer_order(server.url, "slow", "fast") == ["fast", "slow"]


def test_sqlite_without_offload_would_hold_up_everyone(tmp_path: Path) -> None:
    # The control experiment: the same scenario with the query run on the
    # event loop's own thread answers in the other order, so the test above
    # can tell a blocked loop from a free one.
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    run_sql(url, SQLITE_SLOW_VIEW)
    backend = {"store": "sqlalchemy", "url": url, "offload": False}
    settings = settings_for(
        {"slow": {**backend, "table": "slow_things", "reflect": True}, "fast": backend}
    )
    with ServerProcess(settings) as server:
        assert answer_order(server.url, "slow", "fast") == ["slow", "fast"]


@pytest.mark.postgres
def test_a_slow_postgres_query_does_not_hold_up_other_clients(postgres: Any) -> None:
    view = f"slow_{uuid.uuid4().hex[:8]}"
    run_sql(postgres.url, POSTGRES_SLOW_VIEW.format(name=view))
    settings = settings_for(
        {
            "slow": {"store": "sqlalchemy", "url": postgres.url, "table": view, "reflect": True},
            "fast": {"store": "sqlalchemy", "url": postgres.url, "table": f"fast_{view}"},
        }
    )
    with ServerProcess(settings) as server:
        assert answer_order(server.url, "slow", "fast") == ["fast", "slow"]


# -- the database goes away and comes back ----------------------------------------


@pytest.mark.postgres
def test_postgres_going_away_is_unavailable_and_the_store_recovers(postgres: Any) -> None:
    password = "s3cret-pw"  # trust authentication ignores it; it must never be shown
    url = postgres.url.replace(f"{postgres.user}@", f"{postgres.user}:{password}@")
    table = f"down_{uuid.uuid4().hex[:8]}"
    settings = settings_for({"notes": {"store": "sqlalchemy", "url": url, "table": table}})
    with ServerProcess(settings) as server:
        with (
            BackendClient(server.url, "notes") as writer,
            BackendClient(server.url, "notes") as watcher,
        ):
            watcher.listen()
            writer.ok("create", {"id": "before", "n": 1})
            assert watcher.next_synced()[0] == "create"
            postgres.stop()
            try:
                for method, model in (("create", {"id": "during"}), ("read", {})):
                    error, result = writer.sync(method, model)
                    assert result is None
                    assert error["error"]["name"] == "Unavailable", error
                    assert error["error"]["status"] == 503
                    shown = repr(error)
                    for secret in (password, "postgresql", str(postgres.port), "Traceback"):
                        assert secret not in shown
                assert watcher.heard_nothing()
            finally:
                postgres.start()
            writer.ok("create", {"id": "after", "n": 2})
            assert watcher.next_synced()[0] == "create"
            assert [m["id"] for m in writer.ok("read")] == ["before", "after"]
        assert password not in server.log


# -- bad input over the wire ------------------------------------------------------

TASKS_SETTINGS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_URL = {url!r}


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    done: Mapped[bool] = mapped_column(default=False)


engine = sa.create_engine(_URL)
Base.metadata.create_all(engine)
engine.dispose()

BACKENDS = {{
    "tasks": {{"store": "sqlalchemy", "url": _URL, "model": __name__ + ".Task"}},
    "notes": {{"store": "sqlalchemy", "url": _URL}},
}}
"""


def assert_refused(client: BackendClient, method: str, model: Any, *words: str) -> None:
    error, result = client.sync(method, model)
    assert result is None and error is not None, (method, model)
    assert error["error"]["name"] == "BadRequest", error
    for word in words:
        assert word in error["error"]["message"], error


def test_bad_input_is_refused_writes_nothing_and_tells_no_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    with (
        ServerProcess(TASKS_SETTINGS.format(url=url)) as server,
        BackendClient(server.url, "tasks") as alice,
        BackendClient(server.url, "tasks") as bob,
        BackendClient(server.url, "notes") as notes,
    ):
        bob.listen()
        kept = alice.ok("create", {"title": "kept"})
        assert bob.next_synced() == ("create", kept)
        assert_refused(alice, "create", {"title": "x", "colour": "red"}, "colour")
        assert_refused(alice, "create", {"title": 5}, "title must be a string")
        assert_refused(alice, "update", {"id": "one", "title": "y"}, "id must be an integer")
        assert_refused(alice, "patch", {"id": kept["id"], "owner": "me"}, "owner")
        assert_refused(notes, "create", {"id": 1.5}, "id must be")
        assert_refused(notes, "create", {"id": ["a"]}, "id must be")
        error, _ = notes.sync("read", {}, {"data": {"n": {"$regex": "x"}}})
        assert error["error"]["name"] == "BadRequest" and "$regex" in error["error"]["message"]
        error, _ = alice.sync("read", {}, {"data": {"colour": "red"}})
        assert error["error"]["name"] == "BadRequest" and "colour" in error["error"]["message"]
        assert notes.ok("read", {}, {"data": {"colour": "red"}}) == []  # schemaless: no match
        assert alice.ok("read") == [kept]
        assert notes.ok("read") == []
        assert bob.heard_nothing()
        # and the server goes on serving
        assert alice.ok("patch", {"id": kept["id"], "done": True})["done"] is True
        assert bob.next_synced()[0] == "patch"


@pytest.mark.postgres
def test_postgres_refuses_what_jsonb_cannot_hold_over_the_wire(postgres: Any) -> None:
    table = f"nul_{uuid.uuid4().hex[:8]}"
    settings = settings_for({"notes": {"store": "sqlalchemy", "url": postgres.url, "table": table}})
    with (
        ServerProcess(settings) as server,
        BackendClient(server.url, "notes") as alice,
        BackendClient(server.url, "notes") as bob,
    ):
        bob.listen()
        assert_refused(alice, "create", {"id": "a", "k\u0000": 1}, "NUL")
        assert_refused(alice, "create", {"id": "a", "v": "x\u0000y"}, "NUL")
        assert alice.ok("read") == []
        assert bob.heard_nothing()
