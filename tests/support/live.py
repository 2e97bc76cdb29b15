"""A live query's window as a client keeps it: the ack's models, then each event applied.

:class:`Replay` checks what every client relies on: a ``leave`` or ``change``
names a model the window holds, an ``enter`` one it does not, and every index
is valid for the list as it is when the event is applied (docs/live-queries.md).
"""

from __future__ import annotations

import queue
from typing import Any

from backboneio.query import Query

from tests.support.client import TIMEOUT, BackendClient


class Replay:
    """The window of one subscription, rebuilt from its ack and its events."""

    def __init__(self, ack: dict[str, Any], id_attribute: str = "id") -> None:
        self.id = ack["id"]
        self.key = id_attribute
        self.models: list[Any] = list(ack["models"])
        self.seq: int = ack["seq"]  # of the backend's stream without a channel
        # Each stream's seq only goes up (one write may cause several events).
        # (In a new epoch, after the log lost its history, seqs start again.)
        self.seqs = {p["channel"]: (p["epoch"], p["seq"]) for p in ack["positions"]}
        self.events = 0

    def ids(self) -> list[Any]:
        return [m[self.key] for m in self.models]

    def apply(self, kind: str, model: Any, meta: dict[str, Any]) -> None:
        ids = self.ids()
        model_id = model[self.key]
        index = meta["index"]
        self.events += 1
        if kind == "leave":
            assert index is None, meta
            assert model_id in ids, f"leave of {model_id!r}, not in the window {ids}"
            del self.models[ids.index(model_id)]
        elif kind == "change":
            assert model_id in ids, f"change of {model_id!r}, not in the window {ids}"
            del self.models[ids.index(model_id)]
            assert 0 <= index <= len(self.models), (index, len(self.models))
            self.models.insert(index, model)
        elif kind == "enter":
            assert model_id not in ids, f"enter of {model_id!r}, already in the window {ids}"
            assert 0 <= index <= len(self.models), (index, len(self.models))
            self.models.insert(index, model)
        else:
            raise AssertionError(f"unknown kind {kind!r}")
        channel, epoch, seq = meta["channel"], meta["epoch"], meta["seq"]
        last_epoch, last = self.seqs.get(channel, (epoch, 0))
        if epoch == last_epoch:
            assert seq >= last, f"seq of {channel!r} went back: {seq} after {last}"
        self.seqs[channel] = (epoch, seq)
        if channel is None:
            self.seq = seq


def subscribe(client: BackendClient, sub_id: str, query: Any) -> Replay:
    error, ack = client.subscribe(sub_id, query)
    assert error is None, error
    return Replay(ack)


def drain(client: BackendClient, replays: dict[str, Replay], wait: float = 0.3) -> int:
    """Apply every event heard until ``wait`` seconds pass without one; how many."""
    heard = 0
    while True:
        try:
            sub_id, kind, model, meta = client.queries.get(timeout=wait)
        except queue.Empty:
            return heard
        replays[sub_id].apply(kind, model, meta)
        heard += 1


def until_equal(
    client: BackendClient, replay: Replay, expected: list[Any], timeout: float = TIMEOUT
) -> None:
    """Apply events until the window equals ``expected`` (failing after ``timeout``)."""
    import time

    deadline = time.monotonic() + timeout
    while replay.models != expected:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"window {replay.ids()} is not {[m['id'] for m in expected]} after {timeout} s"
            )
        try:
            sub_id, kind, model, meta = client.queries.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        assert sub_id == replay.id, sub_id
        replay.apply(kind, model, meta)


def expected_window(models: list[Any], data: dict[str, Any]) -> list[Any]:
    """What a query's window holds over ``models``: Query's own order, then the id."""
    query = Query.parse(data)
    matching = [m for m in models if query.matches(m)]
    if not query.sort:  # a live window without $sort is in id order
        data = {**data, "$sort": {"id": 1}}
        query = Query.parse(data)
    return query.apply(matching)
