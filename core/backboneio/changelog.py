"""The change log: every write gets a position in a stream, and notifications come from it.

A stream is one backend's writes made without a channel, or one backend's
writes on one channel. Each entry of a stream has a ``seq`` one above the
previous entry's, and the stream has an ``epoch`` that changes whenever its
history is lost (an in-memory log starts a new epoch with every process), so
a client holding ``(epoch, seq)`` can always tell "nothing missed" from
"history gone".

The hub appends, and hears every entry back through the ``deliver`` callback
it gives :meth:`ChangeLog.start`: a log shared by several processes (the
Redis plugin's) delivers there the entries that other processes appended, so
notifications reach every client from one place, whichever process wrote.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

StreamKey = tuple[str, "str | None"]  # (backend, channel)


@dataclass(frozen=True)
class Position:
    """Where a stream stands: the ``seq`` of its newest entry in ``epoch`` (0: none yet)."""

    channel: str | None
    epoch: str
    seq: int

    def as_wire(self) -> dict[str, Any]:
        return {"channel": self.channel, "epoch": self.epoch, "seq": self.seq}


@dataclass(frozen=True)
class Entry:
    """One write, as the log keeps it and every process delivers it."""

    backend: str
    channel: str | None
    epoch: str
    seq: int
    method: str  # create, update, patch or delete
    model: Any
    origin: str | None = None  # the sid of the writer, who learns from its ack instead
    at: float = 0.0  # time.time() when appended

    @property
    def stream(self) -> StreamKey:
        return (self.backend, self.channel)

    @property
    def position(self) -> Position:
        return Position(self.channel, self.epoch, self.seq)


Deliver = Callable[[Entry], None]


@dataclass(frozen=True)
class Retention:
    """How long a stream keeps entries: the newest ``max_entries``, none older than ``max_age``."""

    max_age: float = 300.0
    max_entries: int = 1000


class ChangeLog:
    """What the hub needs of a change log. Subclass it in a plugin's ``change_log`` hook.

    Methods are called from the server's green threads; an implementation
    that does I/O must use cooperative (monkey-patched) calls.
    """

    def start(self, deliver: Deliver) -> None:
        """Begin calling ``deliver(entry)`` once for every appended entry, in
        each stream's order, including entries appended by other processes."""
        raise NotImplementedError

    def append(
        self,
        backend: str,
        channel: str | None,
        method: str,
        model: Any,
        *,
        origin: str | None = None,
        retention: Retention | None = None,
        key: str | None = None,
    ) -> Entry:
        """Record a write and return its entry; raise :class:`backboneio.Unavailable`
        when the log cannot take it (the write's author is told so).

        ``key`` is unique to the write, and the same when the hub appends it
        again after a failure: a log whose answer can be lost after it took
        the entry (a remote one) uses it to record the write only once."""
        raise NotImplementedError

    def head(self, backend: str, channel: str | None) -> Position:
        """The position of the stream's newest entry (``seq`` 0 when it has none)."""
        raise NotImplementedError

    def since(self, backend: str, channel: str | None, epoch: str, seq: int) -> list[Entry] | None:
        """Every retained entry after ``seq``, oldest first, or None when the log
        cannot say: another epoch, or entries after ``seq`` already dropped."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop delivering; called when the server shuts down."""


class MemoryChangeLog(ChangeLog):
    """The core's log: each process keeps its own streams; a restart starts new epochs."""

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.epoch = uuid.uuid4().hex[:12]
        self._streams: dict[StreamKey, _Stream] = {}
        self._deliver: Deliver | None = None
        # Appends come from green threads, and from real threads when a
        # middleware calls backend.emit() inside runner.offload().
        self._lock = threading.Lock()

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def _stream(self, key: StreamKey) -> _Stream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        return stream

    def append(
        self,
        backend: str,
        channel: str | None,
        method: str,
        model: Any,
        *,
        origin: str | None = None,
        retention: Retention | None = None,
        key: str | None = None,
    ) -> Entry:
        # In-process: an append that raised took nothing, so ``key`` is not needed.
        now = time.time()
        with self._lock:
            stream = self._stream((backend, channel))
            stream.seq += 1
            entry = Entry(backend, channel, self.epoch, stream.seq, method, model, origin, now)
            stream.entries.append(entry)
            if retention is not None:
                stream.retention = retention
            stream.prune(stream.retention or self.retention, now)
        if self._deliver is not None:
            self._deliver(entry)
        return entry

    def head(self, backend: str, channel: str | None) -> Position:
        stream = self._streams.get((backend, channel))
        return Position(channel, self.epoch, stream.seq if stream else 0)

    def since(
        self,
        backend: str,
        channel: str | None,
        epoch: str,
        seq: int,
    ) -> list[Entry] | None:
        if epoch != self.epoch:
            return None
        with self._lock:
            stream = self._streams.get((backend, channel))
            head = stream.seq if stream else 0
            if seq > head or seq < 0:
                return None
            if seq == head:
                return []
            assert stream is not None
            stream.prune(stream.retention or self.retention, time.time())
            entries = stream.entries
            if not entries or entries[0].seq > seq + 1:
                return None  # what came right after seq was already dropped
            return [entry for entry in entries if entry.seq > seq]


class _Stream:
    __slots__ = ("entries", "retention", "seq")

    def __init__(self) -> None:
        self.seq = 0
        self.retention: Retention | None = None
        self.entries: deque[Entry] = deque()

    def prune(self, retention: Retention, now: float) -> None:
        entries = self.entries
        while len(entries) > retention.max_entries:
            entries.popleft()
        oldest = now - retention.max_age
        while entries and entries[0].at < oldest:
            entries.popleft()


def wire_positions(positions: Iterable[Position]) -> list[dict[str, Any]]:
    return [position.as_wire() for position in positions]
