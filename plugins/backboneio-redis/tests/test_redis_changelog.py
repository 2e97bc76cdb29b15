"""The shared change log on a real redis-server: semantics, two processes, Redis restarts."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from backboneio import Unavailable
from backboneio.changelog import Entry, Retention
from backboneio_redis import RedisChangeLog
from backboneio_redis.testing import RedisServer

pytestmark = pytest.mark.redis


class Collector:
    """A ``deliver`` callback that keeps what it was given, and waits for more."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._cond = threading.Condition()

    def __call__(self, entry: Entry) -> None:
        with self._cond:
            self.entries.append(entry)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Entry]], bool], timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.entries), timeout)

    def wait_count(self, n: int, timeout: float = 5.0) -> list[Entry]:
        assert self.wait_for(lambda e: len(e) >= n, timeout), (
            f"delivered {len(self.entries)} of {n}"
        )
        return list(self.entries)


@pytest.fixture
def logs(redis_server: RedisServer) -> Iterator[Callable[..., RedisChangeLog]]:
    """Change logs on the session's Redis, under a prefix of this test's own."""
    prefix = f"test:{uuid.uuid4().hex}:log"
    made: list[RedisChangeLog] = []

    def make(server: RedisServer = redis_server, **options: Any) -> RedisChangeLog:
        log = RedisChangeLog(server.url, prefix=options.pop("prefix", prefix), **options)
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


def test_append_numbers_each_stream_and_head_and_since_read_it_back(logs: Any) -> None:
    log = logs()
    empty = log.head("messages", None)
    assert empty.seq == 0 and empty.channel is None and empty.epoch
    first = log.append("messages", None, "create", {"id": 1, "text": "é"}, origin="sid-1")
    second = log.append("messages", None, "update", {"id": 1, "text": "b"})
    on_a = log.append("messages", "room:a/1", "create", {"id": 2})
    other = log.append("rooms", None, "delete", {"id": 9})
    assert (first.seq, second.seq, on_a.seq, other.seq) == (1, 2, 1, 1)
    # The epoch a client was told before the first write stays the stream's.
    assert first.epoch == second.epoch == empty.epoch
    assert on_a.epoch != first.epoch and on_a.channel == "room:a/1"
    assert abs(first.at - time.time()) < 5
    assert log.head("messages", None).seq == 2
    assert log.head("messages", "room:a/1").seq == 1
    assert log.head("messages", "room:a/2").seq == 0

    replay = log.since("messages", None, first.epoch, 0)
    assert replay == [first, second]
    assert replay[0].origin == "sid-1" and replay[0].model == {"id": 1, "text": "é"}
    assert log.since("messages", None, first.epoch, 1) == [second]
    assert log.since("messages", None, first.epoch, 2) == []
    assert log.since("messages", None, first.epoch, 3) is None  # a seq it never had
    assert log.since("messages", None, first.epoch, -1) is None
    assert log.since("messages", None, "another-epoch", 1) is None
    assert log.since("messages", "room:a/1", on_a.epoch, 0) == [on_a]


def test_channel_names_of_any_characters_get_streams_of_their_own(logs: Any) -> None:
    log = logs()
    names = ["a:b", "a%3Ab", "a b", "", "ü/\u2603", "\ud800", "b:a", "*"]
    for i, name in enumerate(names):
        log.append("m:1", name, "create", {"id": i})
    log.append("m", "1:a:b", "create", {"id": "x"})  # ("m", "1:a:b") is not ("m:1", "a:b")
    for i, name in enumerate(names):
        entries = log.since("m:1", name, log.head("m:1", name).epoch, 0)
        assert [(e.channel, e.model) for e in entries] == [(name, {"id": i})]
    assert log.head("m:1", None).seq == 0
    assert log.head("m", "1:a:b").seq == 1


def test_retention_drops_by_count_and_by_age(logs: Any) -> None:
    log = logs()
    keep3 = Retention(max_age=300.0, max_entries=3)
    entries = [log.append("m", None, "create", {"id": i}, retention=keep3) for i in range(5)]
    epoch = entries[0].epoch
    assert [e.seq for e in log.since("m", None, epoch, 2)] == [3, 4, 5]
    assert log.since("m", None, epoch, 1) is None  # entry 2 was dropped
    assert log.since("m", None, epoch, 5) == []

    brief = Retention(max_age=0.3, max_entries=100)
    old = log.append("m", "c", "create", {"id": 1}, retention=brief)
    assert log.since("m", "c", old.epoch, 0) == [old]
    time.sleep(0.5)
    # Too old, though no later append trimmed it yet.
    assert log.since("m", "c", old.epoch, 0) is None
    assert log.since("m", "c", old.epoch, 1) == []
    new = log.append("m", "c", "create", {"id": 2}, retention=brief)
    assert log.since("m", "c", old.epoch, 1) == [new]


def test_two_processes_each_deliver_every_entry_once_in_stream_order(logs: Any) -> None:
    a, b = logs(), logs()
    heard_a, heard_b = Collector(), Collector()
    a.start(heard_a)
    b.start(heard_b)
    written: list[Entry] = []
    lock = threading.Lock()

    def writer(log: RedisChangeLog, who: str) -> None:
        for i in range(150):
            channel = None if i % 3 == 0 else f"ch{i % 2}"
            entry = log.append("messages", channel, "create", {"who": who, "i": i})
            with lock:
                written.append(entry)

    threads = [
        threading.Thread(target=writer, args=(log, who)) for log, who in [(a, "a"), (b, "b")]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for heard in (heard_a, heard_b):
        got = heard.wait_count(len(written))
        time.sleep(0.2)
        assert len(heard.entries) == len(written)  # nothing twice
        assert {(e.stream, e.seq) for e in got} == {(e.stream, e.seq) for e in written}
        for stream in {e.stream for e in written}:
            seqs = [e.seq for e in got if e.stream == stream]
            assert seqs == list(range(1, len(seqs) + 1))
    # Both processes saw the same entries with the same positions and models.
    assert sorted(heard_a.entries, key=_order) == sorted(heard_b.entries, key=_order)


def _order(entry: Entry) -> tuple[Any, ...]:
    return (entry.backend, entry.channel or "", entry.seq)


def test_entries_appended_before_start_are_not_delivered(logs: Any) -> None:
    a = logs()
    a.append("m", None, "create", {"id": 1})
    b = logs()
    heard = Collector()
    b.start(heard)
    later = a.append("m", None, "create", {"id": 2})
    assert heard.wait_count(1) == [later]
    time.sleep(0.3)
    assert heard.entries == [later]


def test_a_delivery_that_raises_does_not_stop_the_reader(logs: Any) -> None:
    log = logs()
    heard = Collector()

    def deliver(entry: Entry) -> None:
        if entry.model.get("boom"):
            raise RuntimeError("a bug in the hub")
        heard(entry)

    log.start(deliver)
    log.append("m", None, "create", {"boom": True})
    ok = log.append("m", None, "create", {"id": 2})
    assert heard.wait_count(1) == [ok]


def test_a_reader_that_fell_behind_the_backlog_backfills_known_streams(logs: Any) -> None:
    a, b = logs(backlog=5), logs(backlog=5)
    heard = Collector()
    b.start(heard)
    first = a.append("m", None, "create", {"i": 0})
    heard.wait_count(1)
    # Simulate b cut off: entries it has not read are trimmed from the
    # global stream (exact trim, where appends trim approximately).
    b._closed.set()
    assert b._thread is not None
    b._thread.join(5)
    for i in range(1, 30):
        a.append("m", None, "create", {"i": i})
    a.client.xtrim(a.global_key, maxlen=3)
    b._closed.clear()
    b._thread = threading.Thread(target=b._run, daemon=True)
    b._thread.start()
    got = heard.wait_count(30)
    assert [e.seq for e in got] == list(range(first.seq, first.seq + 30))
    assert b.undeliverable == 0


def test_configuration_errors_are_clear() -> None:
    from backboneio.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="prefix"):
        RedisChangeLog("redis://127.0.0.1:1/0", prefix="")
    with pytest.raises(ConfigurationError, match="backlog"):
        RedisChangeLog("redis://127.0.0.1:1/0", backlog=0)
    with pytest.raises(ConfigurationError, match="Redis URL") as caught:
        RedisChangeLog("http://:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in str(caught.value)


# -- Redis restarts ------------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["no-persistence", "persistence"])
def restartable(request: Any, redis_binary: str) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, persistent=request.param)
    try:
        yield server.start()
    finally:
        server.close()


def test_redis_restart_writes_fail_then_readers_resume_with_nothing_lost(
    restartable: RedisServer, logs: Any
) -> None:
    a, b = logs(restartable), logs(restartable)
    heard_a, heard_b = Collector(), Collector()
    a.start(heard_a)
    b.start(heard_b)
    before = [a.append("m", None, "create", {"i": i}) for i in range(3)]
    before.append(b.append("m", "c", "create", {"i": 3}))
    for heard in (heard_a, heard_b):
        heard.wait_count(4)

    restartable.stop()
    stopped = time.monotonic()
    refused = 0
    while time.monotonic() - stopped < 2.0:
        with pytest.raises(Unavailable) as caught:
            a.append("m", None, "create", {"lost": True})
        assert "unavailable" in str(caught.value).lower()
        assert str(restartable.port) not in str(caught.value)
        refused += 1
        time.sleep(0.2)
    assert not a.available() and not b.available()
    with pytest.raises(Unavailable):
        b.head("m", None)
    with pytest.raises(Unavailable):
        b.since("m", None, before[0].epoch, 0)

    restartable.start()
    back = time.monotonic()
    # Writes succeed again as soon as Redis answers; readers deliver them.
    after: list[Entry] = []
    deadline = back + 10
    while not after:
        try:
            after.append(b.append("m", None, "create", {"i": 4}))
        except Unavailable:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    first_write = time.monotonic() - back
    for heard in (heard_a, heard_b):
        heard.wait_count(5)
    resumed = time.monotonic() - back
    after += [a.append("m", "c", "create", {"i": 5}), b.append("m", None, "create", {"i": 6})]
    for heard in (heard_a, heard_b):
        heard.wait_count(7)
    time.sleep(0.3)
    for heard in (heard_a, heard_b):
        assert heard.entries == before + after  # none lost, none twice, in order
        assert not any(e.model.get("lost") for e in heard.entries)
    assert a.available() and b.available()
    assert resumed < 5.0  # generous: measured well under 1 s (see the report)
    print(
        f"\nrefused {refused} appends; first write {first_write:.2f} s, "
        f"both readers delivered {resumed:.2f} s after Redis was back"
    )

    old = before[0]
    if restartable.persistent:
        assert after[0].epoch == old.epoch and after[0].seq == 4
        assert [e.seq for e in a.since("m", None, old.epoch, 0)] == [1, 2, 3, 4, 5]
    else:
        # History is gone, and the positions say so.
        assert after[0].epoch != old.epoch and after[0].seq == 1
        assert a.since("m", None, old.epoch, 3) is None
        assert a.since("m", "c", before[3].epoch, 1) is None
        assert a.since("m", None, after[0].epoch, 0) == [after[0], after[2]]


def test_a_log_started_while_redis_is_down_delivers_from_when_it_is_back(
    own_redis_server: RedisServer, logs: Any
) -> None:
    writer = logs(own_redis_server)
    writer.append("m", None, "create", {"old": True})
    own_redis_server.stop()
    reader = logs(own_redis_server)
    heard = Collector()
    reader.start(heard)
    assert not reader.available()
    own_redis_server.start()
    entry = writer.append("m", None, "create", {"new": True})
    assert heard.wait_count(1) == [entry]
    time.sleep(0.3)
    assert heard.entries == [entry]


def test_flushed_under_a_connected_reader_it_follows_the_new_history(
    own_redis_server: RedisServer, logs: Any
) -> None:
    log = logs(own_redis_server)
    heard = Collector()
    log.start(heard)
    for i in range(5):
        log.append("m", None, "create", {"i": i})
    heard.wait_count(5)
    old_epoch = heard.entries[0].epoch
    log.client.flushdb()
    new = [log.append("m", None, "create", {"j": j}) for j in range(2)]
    got = heard.wait_count(7)
    assert got[5:] == new
    assert new[0].seq == 1 and new[0].epoch != old_epoch
    assert log.since("m", None, old_epoch, 5) is None


class AnswerLosingRelay:
    """A TCP relay to Redis that, once armed, forwards the next script call
    but drops Redis's answer and cuts that connection: the write happened,
    and the client cannot know (as when Redis stops right after running it)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = threading.Event()
        self.lost = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            doomed = threading.Event()  # this connection's next answer is lost
            for src, dst, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(src, dst, answers, doomed), daemon=True
                ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, answers: bool, doomed: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if answers and doomed.is_set():
                    self.lost += 1
                    break
                if not answers and self.armed.is_set() and b"EVALSHA" in data.upper():
                    self.armed.clear()
                    doomed.set()
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()


def test_an_append_whose_answer_was_lost_is_logged_once(
    logs: Any, redis_server: RedisServer
) -> None:
    relay = AnswerLosingRelay(redis_server.port)
    try:
        log = logs(server=relay)
        seen = Collector()
        log.start(seen)
        first = log.append("messages", None, "create", {"n": 1}, key="write-1")
        relay.armed.set()
        # Redis runs the script, its answer is lost, the log tries again.
        second = log.append("messages", None, "create", {"n": 2}, key="write-2")
        assert relay.lost == 1
        assert (first.seq, second.seq) == (1, 2)
        assert log.head("messages", None).seq == 2
        assert [e.model for e in log.since("messages", None, first.epoch, 0) or []] == [
            {"n": 1},
            {"n": 2},
        ]
        delivered = seen.wait_count(2)
        time.sleep(0.7)  # a second copy would be delivered within one blocking read
        assert (
            [e.model for e in seen.entries]
            == [e.model for e in delivered]
            == [
                {"n": 1},
                {"n": 2},
            ]
        )
    finally:
        relay.close()
