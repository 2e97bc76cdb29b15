"""live.py's rules on their own: order, the events of one write, the index of windows."""

from __future__ import annotations

from typing import Any

import pytest
from backboneio import live
from backboneio.changelog import Entry
from backboneio.errors import BadRequest
from backboneio.query import Query

SEQ = iter(range(1, 10**6))


def entry(method: str, model: dict[str, Any], channel: str | None = None) -> Entry:
    return Entry("todos", channel, "e", next(SEQ), method, model)


def everyone(entry: Entry, model: Any, identity: Any) -> bool:
    return True


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, backend: str, data: tuple[Any, ...], sid: str) -> None:
        self.events.append((sid, data))


def live_window(
    data: dict[str, Any], models: list[dict[str, Any]] | None = None
) -> tuple[live.LiveQueries, live.Window, Sent]:
    sent = Sent()
    queries = live.LiveQueries(sent)
    key: live.Key = ("todos", None, "", live.canonical(data))
    window = queries.open(key, Query.parse(data), None)
    queries.filled(window, list(models or []), everyone)
    queries.join("todos", "sid1", "q", window)
    return queries, window, sent


def test_the_order_is_the_sort_then_the_id_descending_strings_included() -> None:
    models = [{"id": i, "name": name} for i, name in enumerate(["b", "a", "c", "a", None])]
    _, window, _ = live_window({"$sort": {"name": -1}}, models)
    assert window.window() == [2, 0, 1, 3, 4]  # c b a a(by id) null-last when descending
    _, plain, _ = live_window({}, list(reversed(models)))
    assert plain.window() == [0, 1, 2, 3, 4]  # no $sort: id order


def test_one_write_leaves_then_changes_then_enters_in_ascending_index() -> None:
    models = [{"id": i, "n": i} for i in range(5)]
    queries, window, sent = live_window({"$sort": {"n": 1}, "$limit": 3}, models)
    queries.deliver(entry("create", {"id": 9, "n": -1}), everyone)
    kinds = [(data[1], data[2]["id"], data[3]["index"]) for _, data in sent.events]
    assert kinds == [("leave", 2, None), ("enter", 9, 0)]
    sent.events.clear()
    queries.deliver(entry("patch", {"id": 1, "n": 10}), everyone)  # out: 2 comes back
    kinds = [(data[1], data[2]["id"], data[3]["index"]) for _, data in sent.events]
    assert kinds == [("leave", 1, None), ("enter", 2, 2)]
    assert window.window() == [9, 0, 2]


def test_a_write_that_changes_nothing_shown_sends_nothing() -> None:
    models = [{"id": 1, "n": 1, "hidden": "a"}, {"id": 2, "n": 2}]
    queries, _, sent = live_window({"$sort": {"n": 1}, "$select": ["n"]}, models)
    queries.deliver(entry("patch", {"id": 1, "n": 1, "hidden": "b"}), everyone)
    queries.deliver(entry("update", {"id": 2, "n": 2}), everyone)  # the same again
    assert sent.events == []
    queries.deliver(entry("patch", {"id": 1, "n": 3}), everyone)
    (event,) = [data for _, data in sent.events]
    assert event[:3] == ("q", "change", {"id": 1, "n": 3})
    assert event[3]["index"] == 1


def test_a_patch_merges_into_the_model_held() -> None:
    queries, window, _ = live_window({"done": False}, [{"id": 1, "done": False, "text": "a"}])
    queries.deliver(entry("patch", {"id": 1, "text": "b"}), everyone)  # a partial patch
    assert window.models[1] == {"id": 1, "done": False, "text": "b"}


def test_a_refused_model_counts_as_not_matching() -> None:
    def not_secret(entry: Entry, model: Any, identity: Any) -> bool:
        return not model.get("secret")

    queries, window, sent = live_window({}, [{"id": 1}])
    queries.deliver(entry("create", {"id": 2, "secret": True}), not_secret)
    assert window.window() == [1] and sent.events == []
    queries.deliver(entry("patch", {"id": 1, "secret": True}), not_secret)
    assert window.window() == [] and sent.events[0][1][1] == "leave"


def test_values_equal_in_json_share_an_index_key_and_booleans_are_not_numbers() -> None:
    assert live.value_key(1) == live.value_key(1.0)
    assert live.value_key(True) != live.value_key(1)
    assert live.value_key("1") != live.value_key(1)
    assert live.value_key(None) is None and live.value_key([1]) is None


def test_a_write_is_evaluated_only_by_windows_it_may_change() -> None:
    sent = Sent()
    queries = live.LiveQueries(sent)
    windows = {}
    for owner in ("ann", "bob"):
        data = {"owner": owner, "$sort": {"n": 1}}
        key: live.Key = ("todos", None, "", live.canonical(data))
        window = queries.open(key, Query.parse(data), None)
        queries.filled(window, [], everyone)
        queries.join("todos", f"sid-{owner}", owner, window)
        windows[owner] = window
    shelf = queries.shelves["todos"]
    assert shelf.candidates({"id": 1, "owner": "ann"}, 1) == [windows["ann"]]
    queries.deliver(entry("create", {"id": 1, "owner": "ann", "n": 1}), everyone)
    # Now ann's window holds it: a write moving it to bob reaches both.
    assert set(shelf.candidates({"id": 1, "owner": "bob"}, 1)) == set(windows.values())
    queries.deliver(entry("update", {"id": 1, "owner": "bob", "n": 1}), everyone)
    assert [(sid, data[1]) for sid, data in sent.events] == [
        ("sid-ann", "enter"),
        ("sid-ann", "leave"),
        ("sid-bob", "enter"),
    ]
    queries.dropped("todos", "sid-ann")
    queries.dropped("todos", "sid-bob")
    assert queries.shelves == {}  # nothing left behind, the index included


@pytest.mark.parametrize(
    "args",
    [(), ("q",), ({"id": "q", "query": "x"},), ({"id": None},), ({"id": "q" * 65},)],
)
def test_malformed_subscribe_requests_are_bad_requests(args: tuple[Any, ...]) -> None:
    with pytest.raises(BadRequest):
        live.parse_subscribe(args)


def test_the_store_read_drops_paging_and_asks_one_more_than_the_limit() -> None:
    data = {"done": False, "$sort": {"n": 1}, "$limit": 5, "$skip": 1, "$select": ["n"]}
    assert live.where_only(data, 100) == {"done": False, "$limit": 101}
    assert live.canonical({"b": 1, "a": 2}) == live.canonical({"a": 2, "b": 1})


def replay(before: list[Any], events: list[live.Event]) -> list[Any]:
    """Apply events as a client does, checking each index where it lands."""
    window = list(before)
    for event in events:
        model_id = event.model["id"]
        if event.kind == "leave":
            window.remove(model_id)
            continue
        if event.kind == "change":
            window.remove(model_id)
        else:
            assert model_id not in window
        assert event.index is not None and 0 <= event.index <= len(window)
        window.insert(event.index, model_id)
    return window


def test_any_two_windows_are_bridged_by_valid_events_moving_the_fewest() -> None:
    import random

    rng = random.Random(7)
    for _ in range(500):
        pool = list(range(12))
        before = rng.sample(pool, rng.randrange(0, 10))
        after = rng.sample(pool, rng.randrange(0, 10))
        old = {i: {"id": i, "v": 0} for i in before}
        new = {i: {"id": i, "v": rng.randrange(2)} for i in after}
        events = live.diff(before, after, old, new, lambda m: m)
        assert replay(before, events) == after
        kinds = [e.kind for e in events]
        assert kinds == sorted(kinds, key=["leave", "change", "enter"].index)
        enters = [e.index for e in events if e.kind == "enter"]
        assert enters == sorted(enters)


def test_one_moved_model_is_one_change() -> None:
    before = ["a", "w", "b", "c"]
    after = ["a", "b", "c", "w"]
    models = {i: {"id": i} for i in before}
    events = live.diff(before, after, models, models, lambda m: m)
    assert [(e.kind, e.model["id"], e.index) for e in events] == [("change", "w", 3)]


def test_an_entry_with_an_odd_id_or_no_model_changes_no_window() -> None:
    queries, window, sent = live_window({}, [{"id": 1}])
    for odd in ({"id": [1]}, {"id": {"a": 1}}, {"text": "no id"}):
        queries.deliver(entry("create", odd), everyone)
    queries.deliver(Entry("todos", None, "e", next(SEQ), "create", "not a model"), everyone)
    assert window.window() == [1] and sent.events == []
