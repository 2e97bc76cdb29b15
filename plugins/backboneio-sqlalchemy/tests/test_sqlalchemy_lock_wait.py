"""A PostgreSQL query blocked on a row lock does not block the server (issue 14, item 9).

Another session (psycopg2 in this test process) holds ``SELECT ... FOR
UPDATE`` on a row in an open transaction while a served backboneio gets an
update of that row. psycopg2's wait callback makes the update's wait for the
lock a green wait, so the other clients are answered meanwhile, and the core
can answer the update ``Timeout`` at ``SYNC_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from backboneio.testing.client import BackendClient
from backboneio.testing.server import ServerProcess

pytestmark = pytest.mark.postgres

SYNC_TIMEOUT = 2.0
# The bound a read must meet while another request waits on a lock. A free
# loop answers it in milliseconds; a loop blocked by the update would answer
# only when the lock goes (seconds later). 1 s leaves room for a loaded CI box.
READ_BOUND = 1.0
# How long the other session keeps the lock when nothing answers sooner.
LOCK_HELD = 3.5


def plain_url(postgres: Any) -> str:
    # The URL as the README writes it: no driver named.
    return postgres.url.replace("postgresql+psycopg2://", "postgresql://")


def settings(url: str, table: str, *, green: bool = True) -> str:
    lines = [
        f"BACKENDS = {{'notes': {{'store': 'sqlalchemy', 'url': {url!r}, 'table': {table!r}"
        + ("" if green else ", 'offload': False")
        + "}}",
        f"SYNC_TIMEOUT = {SYNC_TIMEOUT!r}",
    ]
    if not green:
        # The control experiment: no wait callback and no offload, so psycopg2
        # blocks the event loop's thread while it waits for the lock.
        lines.insert(0, "import psycopg2.extensions\npsycopg2.extensions.set_wait_callback(None)")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def row_locked(postgres: Any, table: str, model_id: str) -> Iterator[Any]:
    """Hold ``FOR UPDATE`` on the row of ``model_id`` until the block ends."""
    conn = psycopg2.connect(
        host="127.0.0.1", port=postgres.port, user=postgres.user, dbname="postgres"
    )
    try:
        with conn.cursor() as cur:
            # The document table keeps the id as JSON text, quotes included.
            cur.execute(f'SELECT seq FROM "{table}" WHERE id = %s FOR UPDATE', (f'"{model_id}"',))
            assert cur.fetchone() is not None
        yield conn
    finally:
        conn.rollback()
        conn.close()


class Pending:
    """A sync sent without waiting: its answer and how long it took."""

    def __init__(self, client: BackendClient, method: str, model: Any) -> None:
        self.answered = threading.Event()
        self.answer: tuple[Any, Any] | None = None
        self.seconds: float | None = None
        self.started = time.monotonic()
        request = {"method": method, "model": model, "options": {}}
        client.sio.emit("sync", request, namespace=client.namespace, callback=self._done)

    def _done(self, error: Any = None, result: Any = None) -> None:
        self.seconds = time.monotonic() - self.started
        self.answer = (error, result)
        self.answered.set()


def timed_read(client: BackendClient) -> float:
    started = time.monotonic()
    models = client.ok("read")
    assert [m["id"] for m in models] == ["locked", "free"]
    return time.monotonic() - started


def start(postgres: Any, *, green: bool = True) -> tuple[ServerProcess, str]:
    table = f"locks_{uuid.uuid4().hex[:8]}"
    return ServerProcess(settings(plain_url(postgres), table, green=green)), table


def seed(client: BackendClient) -> None:
    client.ok("create", {"id": "locked", "n": 0})
    client.ok("create", {"id": "free", "n": 0})


def test_other_clients_are_answered_while_an_update_waits_for_a_row_lock(postgres: Any) -> None:
    server, table = start(postgres)
    with (
        server,
        BackendClient(server.url, "notes") as writer,
        BackendClient(server.url, "notes") as reader,
    ):
        seed(writer)
        with row_locked(postgres, table, "locked"):
            update = Pending(writer, "update", {"id": "locked", "n": 1})
            # Not a timing assertion: lets the update reach the lock first.
            time.sleep(0.3)
            reads = [timed_read(reader) for _ in range(5)]
            # Still waiting on the lock: the reads really ran beside it.
            assert not update.answered.is_set(), update.answer
            assert max(reads) < READ_BOUND, reads
            # A write to another row goes through too.
            assert reader.ok("update", {"id": "free", "n": 2}) == {"id": "free", "n": 2}
        assert update.answered.wait(10), "the update was never answered"


def test_control_a_blocking_driver_would_hold_up_the_reader(postgres: Any) -> None:
    # Without the wait callback the same scenario delays the reader until the
    # lock goes, so the test above can tell a blocked server from a free one.
    server, table = start(postgres, green=False)
    with (
        server,
        BackendClient(server.url, "notes") as writer,
        BackendClient(server.url, "notes") as reader,
    ):
        seed(writer)
        with row_locked(postgres, table, "locked") as locker:
            update = Pending(writer, "update", {"id": "locked", "n": 1})
            time.sleep(0.3)
            release = threading.Timer(2.0, locker.rollback)
            release.start()
            try:
                read = timed_read(reader)
            finally:
                release.join()
        assert read > READ_BOUND, read
        assert update.answered.wait(10)


def test_an_update_waiting_on_a_lock_is_answered_timeout_at_sync_timeout(postgres: Any) -> None:
    server, table = start(postgres)
    with (
        server,
        BackendClient(server.url, "notes") as writer,
        BackendClient(server.url, "notes") as reader,
    ):
        seed(writer)
        with row_locked(postgres, table, "locked"):
            update = Pending(writer, "update", {"id": "locked", "n": 1})
            # Held past SYNC_TIMEOUT, so only a timeout can answer sooner.
            update.answered.wait(LOCK_HELD)
            assert timed_read(reader) < READ_BOUND
        assert update.answered.wait(10)
        error, result = update.answer or (None, None)
        assert result is None and error is not None, update.answer
        assert error["error"]["name"] == "Timeout", error
        assert error["error"]["status"] == 504
        # SYNC_TIMEOUT plus a margin for the answer's trip on a loaded machine.
        assert update.seconds is not None and update.seconds < SYNC_TIMEOUT + 0.5, update.seconds
