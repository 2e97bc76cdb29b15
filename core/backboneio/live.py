"""Live queries: a query's window, kept current by the server from the change log.

A socket subscribes with ``subscribe({id, query})``; the answer is the
query's window (its filter, sort and page), and from then on every entry of
the change log that moves a model into, within or out of the window reaches
the socket as ``query(id, kind, model, meta)``. docs/live-queries.md is the
prose version.

How a window is kept: one :class:`Window` per distinct query (and, when
per-recipient rules apply, per identity) holds the query's whole *matching
set* in sort order, read once from the store; the window is a slice of it.
Each entry is applied to the set (a model that stops matching, or that its
subscribers may not see, is taken out), and the window before and after is
diffed into events. Holding the whole set is what lets a model pushed in from
below a ``$limit`` enter without reading the store again.

The wire rules are plain functions (:func:`parse_subscribe`,
:func:`parse_unsubscribe`, :func:`diff`); :class:`LiveQueries` is what the
hub talks to.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import runner
from .changelog import Entry
from .errors import BadRequest
from .query import Compare, Query, SortKey, sort_key

log = logging.getLogger("backboneio")

KINDS = ("enter", "change", "leave")
REREAD_ATTEMPTS = 5
REREAD_PAUSE = 0.5  # seconds, times the attempt
MAX_ID_LENGTH = 64
PAGING = ("$sort", "$limit", "$skip", "$select")


# -- wire rules ----------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    id: str
    data: dict[str, Any]  # the query as the client sent it


def parse_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise BadRequest(
            f"A subscription id is a string of 1 to {MAX_ID_LENGTH} characters, got {value!r}"
        )
    return value


def parse_subscribe(args: tuple[Any, ...]) -> Subscription:
    """``subscribe({"id", "query"[, "since"]})``; ``since`` is accepted and
    ignored (a resubscription always gets a fresh window)."""
    request = args[0] if args else None
    if not isinstance(request, dict):
        raise BadRequest('subscribe takes {"id": "...", "query": {...}}')
    data = request.get("query", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest("The query of a subscription must be an object", query_error="type")
    return Subscription(parse_id(request.get("id")), data)


def parse_unsubscribe(args: tuple[Any, ...]) -> str:
    """``unsubscribe(id)`` or ``unsubscribe({"id": id})``."""
    request = args[0] if args else None
    if isinstance(request, dict):
        request = request.get("id")
    return parse_id(request)


def where_only(data: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """The store read that fills a matching set: the filter without paging, capped
    one above what a live query may hold (so "too many" can be told)."""
    read = {k: v for k, v in data.items() if k not in PAGING}
    read["$limit"] = limit + 1
    return read


def canonical(data: Mapping[str, Any]) -> str:
    """One text per query, whatever the key order, for sharing evaluations."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


Rank = tuple[Any, ...]  # comparable: a model's place in a window's order


class _Descending:
    """A sort key that orders the other way round (strings cannot be negated)."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.key < self.key)

    def __hash__(self) -> int:
        return hash(self.key)


def ranker(sort: tuple[SortKey, ...], id_attribute: str) -> Callable[[Mapping[str, Any]], Rank]:
    """A model's place in the window's order: the sort keys, then the id.

    The same order :meth:`Query.order` gives and every store answers with
    (docs/query.md); without ``$sort`` a window is in id order, so an index
    means the same on every store.
    """

    def rank(model: Mapping[str, Any]) -> Rank:
        parts: list[Any] = []
        for key in sort:
            part = sort_key(model.get(key.field))
            parts.append(_Descending(part) if key.descending else part)
        parts.append(sort_key(model.get(id_attribute)))
        return tuple(parts)

    return rank


@dataclass(frozen=True)
class Event:
    kind: str  # enter, change or leave
    model: Any  # projected by the query's $select
    index: int | None  # in the window once this event is applied; None for leave


def diff(
    before: list[Any],
    after: list[Any],
    models_before: Mapping[Any, Any],
    models_after: Mapping[Any, Any],
    project: Callable[[Any], Any],
) -> list[Event]:
    """The events that turn window ``before`` (ids in order) into ``after``.

    Leaves first, then changes, then enters in ascending index; applied one
    by one, each event's index is right for the list as it is then. Of the
    models in both, the longest run already in the new order stays put and
    only the others move (after one write, only the written model), each
    right after its new predecessor; a model that keeps its place changes
    only if what it shows changed.
    """
    before_set, after_set = set(before), set(after)
    events = [Event("leave", project(models_before[i]), None) for i in before if i not in after_set]
    current = [i for i in before if i in after_set]
    target = [i for i in after if i in before_set]
    place = {model_id: k for k, model_id in enumerate(target)}
    staying = _longest_increasing([place[i] for i in current])
    settled = {target[k] for k in staying}
    moved = set()
    for model_id in target:  # in the new order, so each predecessor is settled first
        if model_id in settled:
            continue
        current.remove(model_id)
        k = place[model_id]
        index = current.index(target[k - 1]) + 1 if k else 0
        current.insert(index, model_id)
        settled.add(model_id)
        moved.add(model_id)
        events.append(Event("change", project(models_after[model_id]), index))
    for index, model_id in enumerate(current):
        if model_id not in moved:
            new = project(models_after[model_id])
            if new != project(models_before[model_id]):
                events.append(Event("change", new, index))
    events.extend(
        Event("enter", project(models_after[i]), index)
        for index, i in enumerate(after)
        if i not in before_set
    )
    return events


def _longest_increasing(values: list[int]) -> list[int]:
    """The values of a longest strictly increasing subsequence (patience sorting)."""
    tails: list[int] = []  # tails[k]: index in values of the smallest tail of a run of k+1
    tail_values: list[int] = []
    previous: list[int] = [-1] * len(values)
    for n, value in enumerate(values):
        k = bisect.bisect_left(tail_values, value)
        if k:
            previous[n] = tails[k - 1]
        if k == len(tails):
            tails.append(n)
            tail_values.append(value)
        else:
            tails[k] = n
            tail_values[k] = value
    run: list[int] = []
    n = tails[-1] if tails else -1
    while n != -1:
        run.append(values[n])
        n = previous[n]
    return run[::-1]


# -- one evaluation ------------------------------------------------------------

Visible = Callable[[Entry, Any, Any], bool]  # entry, the model as it would enter, identity


@dataclass(eq=False)
class Window:
    """One query's matching set in order, and the subscriptions that share it."""

    backend: str
    query: Query
    identity: Any  # whose per-recipient rules decide what may enter
    models: dict[Any, Any] = field(default_factory=dict)  # id -> model, the matching set
    ranks: list[Rank] = field(default_factory=list)  # sorted ranks of the matching set
    subscribers: dict[tuple[str, str], None] = field(default_factory=dict)  # (sid, id)
    loading: list[Entry] | None = field(default_factory=list)  # entries while it reads
    ready: runner.Signal = field(default_factory=runner.Signal)
    failed: bool = False
    # Told when the matching set gains or loses a model (the shelf's index of holders).
    on_hold: Callable[[Any, bool], None] | None = None
    # Reads the matching set from the store again (the hub's), after a break in the log.
    source: Callable[[], list[Any]] | None = None
    position: dict[str, Any] | None = None  # of the last entry applied, for a refresh's meta

    def __post_init__(self) -> None:
        self.rank = ranker(self.query.sort, self.query.id_attribute)
        self.start = self.query.skip
        self.end = None if self.query.limit is None else self.query.skip + self.query.limit
        self.id_of: dict[Rank, Any] = {}  # rank -> id

    def fill(self, models: list[Any]) -> None:
        for model in models:
            self._insert(model)

    def reset(self, models: list[Any]) -> None:
        """The matching set is ``models`` now, whatever it was."""
        for model_id in list(self.models):
            self._remove(model_id)
        self.fill(models)

    def window(self) -> list[Any]:
        return [self.id_of[r] for r in self.ranks[self.start : self.end]]

    def shown(self) -> list[Any]:
        return [self.query.project(self.models[i]) for i in self.window()]

    def apply(self, entry: Entry, visible: Visible) -> list[Event]:
        """Apply one entry to the matching set; the window's events."""
        model = entry.model
        if not isinstance(model, Mapping):
            return []
        model_id = model.get(self.query.id_attribute)
        if model_id is None:
            return []
        old = self.models.get(model_id)
        new: Any = None
        if entry.method != "delete":
            new = {**old, **model} if entry.method == "patch" and old is not None else model
            if not (self.query.matches(new) and visible(entry, new, self.identity)):
                new = None
        if old is None and new is None:
            return []
        if self.start == 0 and self.end is None:
            return self._apply_whole(model_id, old, new)
        before = self.window()
        models_before = {i: self.models[i] for i in before}
        if old is not None:
            self._remove(model_id)
        if new is not None:
            self._insert(new)
        after = self.window()
        models_after = {i: self.models[i] for i in after}
        return diff(before, after, models_before, models_after, self.query.project)

    def _apply_whole(self, model_id: Any, old: Any, new: Any) -> list[Event]:
        """:meth:`apply` when the window is the whole matching set: no diff needed."""
        project = self.query.project
        was = self._remove(model_id) if old is not None else None
        if new is None:
            return [Event("leave", project(old), None)]
        index = self._insert(new)
        if old is None:
            return [Event("enter", project(new), index)]
        shown = project(new)
        if index != was or shown != project(old):
            return [Event("change", shown, index)]
        return []

    def _insert(self, model: Any) -> int:
        model_id = model[self.query.id_attribute]
        if model_id in self.models:
            self._remove(model_id)
        rank = self.rank(model)
        index = bisect.bisect_left(self.ranks, rank)
        self.ranks.insert(index, rank)
        self.id_of[rank] = model_id
        self.models[model_id] = model
        if self.on_hold is not None:
            self.on_hold(model_id, True)
        return index

    def _remove(self, model_id: Any) -> int:
        rank = self.rank(self.models.pop(model_id))
        index = bisect.bisect_left(self.ranks, rank)
        del self.ranks[index]
        del self.id_of[rank]
        if self.on_hold is not None:
            self.on_hold(model_id, False)
        return index


Key = tuple[str, "str | None", str, str]  # (backend, channel, identity scope, canonical query)
Send = Callable[[str, tuple[Any, ...], str], None]  # backend, query(...) args, sid


def value_key(value: Any) -> tuple[str, Any] | None:
    """A hashable stand-in for a JSON scalar, equal for values :func:`json_equal` finds
    equal (1 and 1.0; never true and 1); None for values that are not indexed."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))  # a collision only costs an evaluation
    if isinstance(value, str):
        return ("s", value)
    return None


def index_condition(query: Query) -> tuple[str, tuple[str, Any]] | None:
    """A top-level ``field == scalar`` condition: a write without that value in
    that field cannot enter the window, so it need not be evaluated for it."""
    for condition in query.where.conditions:
        if isinstance(condition, Compare) and condition.op == "eq":
            key = value_key(condition.value)
            if key is not None:
                return condition.field, key
    return None


@dataclass
class Shelf:
    """One backend's windows, indexed so a write is evaluated only where it may count."""

    windows: dict[Key, Window] = field(default_factory=dict)
    loading: dict[Window, None] = field(default_factory=dict)
    scan: dict[Window, None] = field(default_factory=dict)  # every write is evaluated
    by_value: dict[str, dict[tuple[str, Any], dict[Window, None]]] = field(default_factory=dict)
    holders: dict[Any, dict[Window, None]] = field(default_factory=dict)  # model id -> windows
    id_attribute: str = "id"

    def place(self, window: Window) -> None:
        indexed = index_condition(window.query)
        if indexed is None:
            self.scan[window] = None
        else:
            name, key = indexed
            self.by_value.setdefault(name, {}).setdefault(key, {})[window] = None

    def remove(self, window: Window) -> None:
        self.loading.pop(window, None)
        self.scan.pop(window, None)
        indexed = index_condition(window.query)
        if indexed is not None:
            name, key = indexed
            table = self.by_value.get(name, {})
            table.get(key, {}).pop(window, None)
            if not table.get(key, True):
                del table[key]
            if not table:
                self.by_value.pop(name, None)
        for model_id in window.models:
            self.held(window, model_id, False)

    def held(self, window: Window, model_id: Any, holds: bool) -> None:
        if holds:
            self.holders.setdefault(model_id, {})[window] = None
            return
        windows = self.holders.get(model_id)
        if windows is not None:
            windows.pop(window, None)
            if not windows:
                del self.holders[model_id]

    def candidates(self, model: Mapping[str, Any], model_id: Any) -> list[Window]:
        """The windows ``model``'s write may change: those that hold it, those
        its values may enter, and those without an index."""
        found = dict(self.scan)
        found.update(self.holders.get(model_id, {}))
        for name, table in self.by_value.items():
            key = value_key(model.get(name))
            if key is not None:
                found.update(table.get(key, {}))
        return list(found)


class LiveQueries:
    """Every window of this process, by backend, and each socket's subscriptions."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.shelves: dict[str, Shelf] = {}  # backend -> its windows
        self.by_socket: dict[tuple[str, str], dict[str, Window]] = {}  # (backend, sid)

    def count(self, backend: str, sid: str) -> int:
        return len(self.by_socket.get((backend, sid), ()))

    def subscribed(self, backend: str, sid: str, sub_id: str) -> bool:
        return sub_id in self.by_socket.get((backend, sid), {})

    def find(self, key: Key) -> Window | None:
        shelf = self.shelves.get(key[0])
        return shelf.windows.get(key) if shelf is not None else None

    def open(self, key: Key, query: Query, identity: Any) -> Window:
        """A new window in its loading state: entries wait in it until it is filled."""
        shelf = self.shelves.setdefault(key[0], Shelf(id_attribute=query.id_attribute))
        window = Window(key[0], query, identity)
        window.on_hold = functools.partial(shelf.held, window)
        shelf.windows[key] = window
        shelf.loading[window] = None
        return window

    def filled(self, window: Window, models: list[Any], visible: Visible) -> None:
        """The store's answer is in: apply what arrived meanwhile; the window is live.

        An entry that arrived while the store was read may already be in its
        answer; applying it again is a no-op, or shows that model as of the
        entry until the next entry about it (docs/live-queries.md).
        """
        window.fill(models)
        waiting, window.loading = window.loading or [], None
        for entry in waiting:
            window.apply(entry, visible)
        shelf = self.shelves[window.backend]
        shelf.loading.pop(window, None)
        shelf.place(window)
        window.ready.send()

    def abandon(self, window: Window) -> None:
        """Its store read failed: whoever waits for it reads on its own."""
        window.failed = True
        window.loading = None
        self._forget(window)
        window.ready.send()

    def join(self, backend: str, sid: str, sub_id: str, window: Window) -> None:
        window.subscribers[(sid, sub_id)] = None
        self.by_socket.setdefault((backend, sid), {})[sub_id] = window

    def leave(self, backend: str, sid: str, sub_id: str) -> None:
        subs = self.by_socket.get((backend, sid))
        if not subs or sub_id not in subs:
            return
        window = subs.pop(sub_id)
        if not subs:
            del self.by_socket[(backend, sid)]
        window.subscribers.pop((sid, sub_id), None)
        if not window.subscribers and window.loading is None:
            self._forget(window)

    def dropped(self, backend: str, sid: str) -> None:
        for sub_id in list(self.by_socket.get((backend, sid), ())):
            self.leave(backend, sid, sub_id)

    def _forget(self, window: Window) -> None:
        shelf = self.shelves.get(window.backend)
        if shelf is None:
            return
        for k, w in list(shelf.windows.items()):
            if w is window:
                del shelf.windows[k]
        shelf.remove(window)
        if not shelf.windows:
            del self.shelves[window.backend]

    def refresh(self, backend: str, visible: Visible) -> None:
        """This process missed entries of ``backend`` (the log lost them, or its
        reader fell too far behind): read every window of it again, and tell
        each subscriber the difference as ordinary events."""
        shelf = self.shelves.get(backend)
        if shelf is None:
            return
        for window in list(shelf.windows.values()):
            if window.loading is not None or window.source is None:
                continue  # one being read now will be right
            window.loading = []
            window.ready = runner.Signal()
            shelf.loading[window] = None
            runner.spawn(self._reread, shelf, window, visible)

    def _reread(self, shelf: Shelf, window: Window, visible: Visible) -> None:
        models = None
        for attempt in range(REREAD_ATTEMPTS):
            try:
                assert window.source is not None
                models = window.source()
                break
            except Exception:
                log.exception("live query of %r: reading it again failed", window.backend)
                runner.sleep(REREAD_PAUSE * (attempt + 1))
        # From here to the events, nothing yields: no entry comes in between.
        before = window.window()
        models_before = {i: window.models[i] for i in before}
        if models is not None:
            window.reset(models)
        waiting, window.loading = window.loading or [], None
        for entry in waiting:
            window.apply(entry, visible)
            window.position = entry.position.as_wire()
        shelf.loading.pop(window, None)
        window.ready.send()
        after = window.window()
        models_after = {i: window.models[i] for i in after}
        events = diff(before, after, models_before, models_after, window.query.project)
        self._tell(window, events, window.position or {"channel": None, "epoch": "", "seq": 0})
        if not window.subscribers:  # they all left while it was read
            self._forget(window)

    def _tell(self, window: Window, events: list[Event], position: dict[str, Any]) -> None:
        for event in events:
            meta = {"index": event.index, **position}
            for sid, sub_id in list(window.subscribers):
                self.send(window.backend, (sub_id, event.kind, event.model, meta), sid)

    def deliver(self, entry: Entry, visible: Visible) -> None:
        """One change-log entry, to the windows of its backend it may change."""
        shelf = self.shelves.get(entry.backend)
        if shelf is None:
            return
        for window in shelf.loading:
            if window.loading is not None:
                window.loading.append(entry)
        model = entry.model
        if not isinstance(model, Mapping):
            return
        model_id = model.get(shelf.id_attribute)
        if model_id is None or not isinstance(model_id, (str, int, float)):
            return  # no store makes such an id (stores.check_id); an emitter might
        position = entry.position.as_wire()
        for window in shelf.candidates(model, model_id):
            if window.loading is not None:
                continue  # being read again: the entry waits in it
            window.position = position
            events = window.apply(entry, visible)
            if events:
                self._tell(window, events, position)
