"""Live queries when the shared change log loses entries: Redis restarted, a process paused.

Two ``backboneio serve`` processes share a SQLite store and the change log on
Redis. The subscriber's process is paused (SIGSTOP) while the other process
writes, and Redis is restarted without persistence before it resumes: the
entries it never read are gone with Redis. Its windows must still end equal
to the store: the process notices the break in the log at the next entry and
reads its windows again, telling subscribers the difference as ordinary events.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.client import BackendClient
from tests.support.live import subscribe, until_equal
from tests.support.requires import binary

pytestmark = [pytest.mark.redis, pytest.mark.single_process]


@pytest.fixture
def redis() -> Iterator[Any]:
    from backboneio_redis.testing import RedisServer

    server = RedisServer(binary("redis-server", "apt-get install redis-server"))
    try:
        yield server.start()
    finally:
        server.close()


def fresh_read(client: BackendClient, data: dict[str, Any]) -> list[Any]:
    return list(client.ok("read", {}, {"data": {**data, "$sort": data.get("$sort", {"id": 1})}}))


def test_a_window_is_read_again_when_its_process_missed_entries(redis: Any, tmp_path: Path) -> None:
    from backboneio_redis.testing import ServerCluster

    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    settings = (
        f"BACKENDS = {{'todos': {{'store': 'sqlalchemy', 'url': {url!r}}}}}\n"
        f"REDIS_MANAGER_URL = {redis.url!r}\n"
    )
    query = {"done": False, "$sort": {"n": -1}, "$limit": 4}
    with ServerCluster(settings, redis_url=redis.url, processes=2) as cluster:
        paused, writing = cluster.processes
        with (
            BackendClient(paused.url, "todos") as sub,
            BackendClient(writing.url, "todos") as writer,
        ):
            for n in range(3):
                writer.ok("create", {"n": n, "done": False})
            window = subscribe(sub, "top", query)
            until_equal(sub, window, fresh_read(writer, query))

            os.kill(paused.proc.pid, signal.SIGSTOP)
            try:
                for n in range(10, 15):  # the paused process never reads these
                    writer.ok("create", {"n": n, "done": False})
                redis.stop()
                redis.start()  # without persistence: the log is gone
                time.sleep(0.5)
            finally:
                os.kill(paused.proc.pid, signal.SIGCONT)
            # The next entry reaches both processes in the log's new epoch.
            deadline = time.monotonic() + 10
            while True:
                error, _ = writer.sync("create", {"n": 20, "done": False})
                if error is None:
                    break
                assert time.monotonic() < deadline, error  # Unavailable until Redis is back
                time.sleep(0.2)
            expected = fresh_read(writer, query)
            assert [m["n"] for m in expected] == [20, 14, 13, 12]
            until_equal(sub, window, expected, timeout=15)
            assert "reading live queries again" in paused.log
