"""The change feed: writes typed in SQL reach the clients of a real ``backboneio serve``.

Every external write here is made with psycopg2 on its own connection, as
psql would, never through backboneio. Every wait is bounded.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.support.client import BackendClient
from tests.support.requires import binary
from tests.support.server import ServerProcess

WAIT = 10.0  # seconds any one expected notification may take before the test fails


def settings_for(backends: dict[str, dict[str, Any]], **extra: Any) -> str:
    lines = [f"BACKENDS = {backends!r}"]
    lines += [f"{name} = {value!r}" for name, value in extra.items()]
    return "\n".join(lines) + "\n"


def dsn(postgres: Any) -> str:
    return f"host=127.0.0.1 port={postgres.port} user={postgres.user} dbname=postgres"


def psql(postgres: Any, *statements: str, params: Any = None) -> list[Any]:
    """Run statements in one transaction on a connection of its own, as psql would."""
    conn = psycopg2.connect(dsn(postgres), connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            rows: list[Any] = []
            for statement in statements:
                cur.execute(statement, params)
                if cur.description is not None:
                    rows = cur.fetchall()
            return rows
    finally:
        conn.close()


def insert(postgres: Any, table: str, model: dict[str, Any]) -> None:
    psql(
        postgres,
        f"INSERT INTO {table} (id, body) VALUES (%(id)s, %(body)s)",
        params={"id": json.dumps(model["id"]), "body": json.dumps(model)},
    )


def outbox_rows(postgres: Any, table: str) -> int:
    return psql(
        postgres,
        "SELECT count(*) FROM backboneio_outbox WHERE source = %(source)s",
        params={"source": f"public.{table}"},
    )[0][0]


def feed_settings(postgres: Any, table: str, **extra: Any) -> str:
    backend = {"store": "sqlalchemy", "url": postgres.url, "table": table, "change_feed": True}
    return settings_for({"notes": backend}, **extra)


def next_with_position(client: BackendClient) -> tuple[str, Any, Any]:
    # The client records a notification's position before its (method, model).
    count = client.synced_count = getattr(client, "synced_count", 0) + 1
    method, model = client.next_synced(timeout=WAIT)
    return method, model, client.positions[count - 1]


def new_table() -> str:
    return f"feed_{uuid.uuid4().hex[:10]}"


# -- external writes reach clients ------------------------------------------------


@pytest.mark.postgres
def test_insert_update_delete_typed_in_sql_reach_a_listening_client(postgres: Any) -> None:
    table = new_table()
    with (
        ServerProcess(feed_settings(postgres, table)) as server,
        BackendClient(server.url, "notes") as watcher,
    ):
        watcher.listen()
        insert(postgres, table, {"id": "a", "text": "typed in psql"})
        started = time.monotonic()
        method, model, position = next_with_position(watcher)
        latency = time.monotonic() - started
        assert (method, model) == ("create", {"id": "a", "text": "typed in psql"})
        assert position["seq"] == 1 and position["channel"] is None and position["epoch"]

        psql(postgres, f"""UPDATE {table} SET body = body || '{{"text": "edited"}}'""")
        method, model, position = next_with_position(watcher)
        assert (method, model) == ("update", {"id": "a", "text": "edited"})
        assert position["seq"] == 2

        psql(postgres, f"DELETE FROM {table}")
        method, model, position = next_with_position(watcher)
        assert (method, model) == ("delete", {"id": "a", "text": "edited"})
        assert position["seq"] == 3

        # One transaction, several rows: each is one notification, in order.
        psql(
            postgres,
            *(
                f"""INSERT INTO {table} (id, body) VALUES ('"m{i}"', '{{"id": "m{i}"}}')"""
                for i in range(5)
            ),
        )
        got = [next_with_position(watcher) for _ in range(5)]
        assert [(m, model["id"]) for m, model, _ in got] == [("create", f"m{i}") for i in range(5)]
        assert [p["seq"] for _, _, p in got] == [4, 5, 6, 7, 8]
        assert watcher.heard_nothing()
        assert outbox_rows(postgres, table) == 0  # claimed and deleted
    print(f"psql INSERT -> client notification: {latency * 1000:.1f} ms")


@pytest.mark.postgres
def test_an_update_that_changes_the_id_is_a_delete_and_a_create(postgres: Any) -> None:
    table = new_table()
    with (
        ServerProcess(feed_settings(postgres, table)) as server,
        BackendClient(server.url, "notes") as watcher,
    ):
        watcher.listen()
        insert(postgres, table, {"id": "old", "n": 1})
        assert watcher.next_synced(WAIT)[0] == "create"
        psql(postgres, f"""UPDATE {table} SET id = '"new"', body = '{{"id": "new", "n": 1}}'""")
        assert watcher.next_synced(WAIT) == ("delete", {"id": "old", "n": 1})
        assert watcher.next_synced(WAIT) == ("create", {"id": "new", "n": 1})


COLUMN_TABLE = """
CREATE TABLE {name} (
    id serial PRIMARY KEY,
    title text NOT NULL,
    done boolean NOT NULL DEFAULT false,
    due timestamptz,
    price numeric(8, 2)
)
"""


@pytest.mark.postgres
def test_a_column_table_is_notified_with_the_values_the_store_would_read(postgres: Any) -> None:
    table = new_table()
    psql(postgres, COLUMN_TABLE.format(name=table))
    backend = {
        "store": "sqlalchemy",
        "url": postgres.url,
        "table": table,
        "reflect": True,
        "change_feed": True,
    }
    with (
        ServerProcess(settings_for({"tasks": backend})) as server,
        BackendClient(server.url, "tasks") as watcher,
    ):
        watcher.listen()
        psql(
            postgres,
            f"INSERT INTO {table} (title, due, price) "
            "VALUES ('from SQL', '2026-12-03 10:00:00+00', 9.50)",
        )
        method, model = watcher.next_synced(WAIT)
        assert method == "create"
        # What a read through the store answers, value for value.
        assert watcher.ok("read", {"id": model["id"]}) == model
        assert model["title"] == "from SQL" and model["done"] is False
        assert model["price"] == 9.5 and model["due"].startswith("2026-12-03T10:00:00")


# -- no echo ------------------------------------------------------------------------


@pytest.mark.postgres
def test_backboneios_own_writes_are_notified_exactly_once(postgres: Any) -> None:
    table = new_table()
    with (
        ServerProcess(feed_settings(postgres, table, CHANGE_LOG_MAX_ENTRIES=100)) as server,
        BackendClient(server.url, "notes") as writer,
        BackendClient(server.url, "notes") as watcher,
    ):
        watcher.listen()
        writer.ok("create", {"id": "w", "n": 1})
        writer.ok("update", {"id": "w", "n": 2})
        writer.ok("patch", {"id": "w", "n": 3})
        writer.ok("delete", {"id": "w"})
        # A marker written in SQL after them: the feed delivers in outbox
        # order, so an echo of the four writes would arrive before it.
        insert(postgres, table, {"id": "marker"})
        heard = [watcher.next_synced(WAIT) for _ in range(5)]
        assert [method for method, _ in heard] == ["create", "update", "patch", "delete", "create"]
        assert heard[-1][1] == {"id": "marker"}
        assert watcher.heard_nothing()
        assert [p["seq"] for p in watcher.positions] == [1, 2, 3, 4, 5]
        assert outbox_rows(postgres, table) == 0


# -- the server away, the database restarted ----------------------------------------


def wait_for_head(client: BackendClient, seq: int) -> dict[str, Any]:
    """The backend stream's position once it has ``seq`` entries (bounded wait).

    Asked with reads (whose ack carries the positions), not listens, so the
    client hears nothing live meanwhile.
    """
    deadline = time.monotonic() + WAIT
    while True:
        client.ok("read")
        position = client.last_ack[2]["positions"][0]
        if position["seq"] >= seq or time.monotonic() > deadline:
            return position
        time.sleep(0.05)


def test_rows_written_while_the_server_was_stopped_are_delivered_when_it_starts(
    postgres: Any,
) -> None:
    table = new_table()
    server = ServerProcess(feed_settings(postgres, table))
    with server, BackendClient(server.url, "notes") as writer:
        writer.ok("create", {"id": "kept", "n": 0})  # installed, and one row of our own
    # No server runs: the trigger keeps recording.
    insert(postgres, table, {"id": "x", "n": 1})
    psql(postgres, f"""UPDATE {table} SET body = '{{"id": "kept", "n": 2}}' WHERE id = '"kept"'""")
    psql(postgres, f"""DELETE FROM {table} WHERE id = '"x"'""")
    assert outbox_rows(postgres, table) == 3
    with server, BackendClient(server.url, "notes") as late:
        # The new server turns them into entries of its change log as it
        # starts: heard live if this client connected first, and the rest
        # replayed from the last position it has, like backbone.io.js does.
        head = wait_for_head(late, 3)
        assert head["seq"] == 3, head
        heard_live = len(late.positions)
        since = {"channel": None, "epoch": head["epoch"], "seq": heard_live}
        answer = late.listen_answer(None, since=[since])
        assert answer["recovered"] is True, answer
        got = [late.next_synced(WAIT) for _ in range(3)]
        assert got == [
            ("create", {"id": "x", "n": 1}),
            ("update", {"id": "kept", "n": 2}),
            ("delete", {"id": "x", "n": 1}),
        ]
        assert [p["seq"] for p in late.positions] == [1, 2, 3]
        print(f"after the restart: {heard_live} heard live, {3 - heard_live} replayed")
        assert late.heard_nothing()
        assert outbox_rows(postgres, table) == 0


@pytest.mark.postgres
def test_the_feed_survives_a_postgres_restart_without_losing_a_row(postgres: Any) -> None:
    table = new_table()
    with (
        ServerProcess(feed_settings(postgres, table)) as server,
        BackendClient(server.url, "notes") as watcher,
    ):
        watcher.listen()
        for i in range(10):
            insert(postgres, table, {"id": f"before{i}"})
        # Stopped at once: some of those rows may still be in the outbox.
        postgres.stop()
        postgres.start()
        back = time.monotonic()
        # Written while the feed is still reconnecting.
        for i in range(10):
            insert(postgres, table, {"id": f"after{i}"})
        heard = []
        first_after = None
        while len(heard) < 20:
            try:
                method, model = watcher.next_synced(WAIT)
            except queue.Empty:
                break
            heard.append((method, model["id"]))
            if model["id"] == "after0":
                first_after = time.monotonic() - back
        expected = [("create", f"before{i}") for i in range(10)]
        expected += [("create", f"after{i}") for i in range(10)]
        assert heard == expected, f"{len(heard)} of 20: {heard}\n{server.log}"
        assert watcher.heard_nothing()
        assert [p["seq"] for p in watcher.positions] == list(range(1, 21))
        assert outbox_rows(postgres, table) == 0
        assert "change feed of 'notes': connected again" in server.log
    print(f"delivered 20/20 across the restart; first row after it {first_after:.2f} s after start")


# -- a cluster: several processes, one outbox ---------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    pytest.importorskip("backboneio_redis", reason="pip install ./plugins/backboneio-redis")
    from backboneio_redis.testing import RedisServer

    server = RedisServer(binary("redis-server", "apt-get install redis-server"))
    try:
        yield server.start().url
    finally:
        server.close()


def drainers(*servers: ServerProcess) -> list[int]:
    return [i for i, s in enumerate(servers) if "this process drains" in s.log]


@pytest.mark.postgres
def test_with_two_processes_each_row_is_one_notification_heard_on_both(
    postgres: Any, redis_url: str
) -> None:
    table = new_table()
    settings = feed_settings(postgres, table, REDIS_MANAGER_URL=redis_url)
    first, second = ServerProcess(settings), ServerProcess(settings)
    with first, second:
        on_first = BackendClient(first.url, "notes")
        on_second = BackendClient(second.url, "notes")
        try:
            on_first.listen()
            on_second.listen()
            for i in range(20):
                insert(postgres, table, {"id": f"r{i}"})
            for client in (on_first, on_second):
                heard = [client.next_synced(WAIT)[1]["id"] for _ in range(20)]
                assert heard == [f"r{i}" for i in range(20)]
                assert client.heard_nothing()
                assert [p["seq"] for p in client.positions] == list(range(1, 21))
            assert on_first.positions == on_second.positions  # one shared log
            assert len(drainers(first, second)) == 1
            # The drainer goes away: the other process takes over, and rows
            # written meanwhile are still delivered, once.
            gone, stays = (first, second) if drainers(first, second) == [0] else (second, first)
            listener = on_second if stays is second else on_first
            (on_first if gone is first else on_second).close()
            gone.stop()
            for i in range(20, 25):
                insert(postgres, table, {"id": f"r{i}"})
            heard = [listener.next_synced(WAIT)[1]["id"] for _ in range(5)]
            assert heard == [f"r{i}" for i in range(20, 25)]
            assert listener.heard_nothing()
            assert "this process drains" in stays.log
        finally:
            on_first.close()
            on_second.close()
    assert outbox_rows(postgres, table) == 0


# -- only PostgreSQL ----------------------------------------------------------------


def test_change_feed_on_sqlite_is_a_configuration_error_at_start_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    backend = {"store": "sqlalchemy", "url": url, "change_feed": True}
    with pytest.raises(RuntimeError) as info, ServerProcess(settings_for({"notes": backend})):
        pass
    message = str(info.value)
    assert "configuration error" in message
    assert "'change_feed' of backend 'notes' needs PostgreSQL" in message
    assert "sqlite" in message and "Traceback" not in message


def test_change_feed_must_be_true_or_false(tmp_path: Path) -> None:
    from backboneio.errors import ConfigurationError
    from backboneio_sqlalchemy import store

    with pytest.raises(ConfigurationError, match="change_feed must be True or False"):
        store(f"sqlite:///{tmp_path / 'x.sqlite3'}", change_feed="yes")
