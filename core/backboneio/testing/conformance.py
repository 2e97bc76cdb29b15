"""The store conformance suite: one set of tests every store must pass.

A store plugin runs it against its own store by subclassing::

    import pytest
    from backboneio.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def make_store(self, ...):
            def make(id_attribute: str = "id"):
                return <a fresh, EMPTY store middleware for a new backend>
            return make

``make`` may be called several times in one test, and each call must give a
store that shares nothing with the others. If it also takes a
``max_limit`` keyword the suite checks that setting; a store without one
sets ``supports_max_limit = False``. A ``version_attribute`` keyword
(``make(version_attribute="_version")``) asks for a versioned store, whose
optimistic concurrency the suite then proves (docs/conflicts.md); a store
without versions sets ``supports_versions = False``. A store that remembers
idempotency keys with its writes (``remembers_keys = True``,
docs/idempotency.md) proves that too; one that does not sets
``supports_idempotency_keys = False``. See docs/stores.md for every knob.
"""

from __future__ import annotations

import copy
import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from .. import runner
from ..backend import WRITE_METHODS, Backend, Middleware, Request
from ..errors import BadRequest, Conflict, IdempotencyKeyReused, NotFound, SyncError
from ..idempotency import Answer, IdempotencyKey, fingerprint
from ..query import json_equal
from . import data

MakeStore = Callable[..., Middleware]
VERSION = "_version"


class StoreClient:
    """Sends requests to a store through a real :class:`~backboneio.Backend`."""

    def __init__(
        self,
        store: Middleware,
        *,
        id_attribute: str = "id",
        name: str = "conformance",
        timeout: float | None = 30.0,
    ) -> None:
        self.id_attribute = id_attribute
        self.timeout = timeout
        self.backend = Backend(name, id_attribute=id_attribute)
        self.backend.use(store)

    def sync(self, method: str, model: dict[str, Any] | None = None, options: Any = None) -> Any:
        req = Request(
            method=method,
            model=model if model is not None else {},
            options=options if options is not None else {},
            backend=self.backend.name,
            id_attribute=self.id_attribute,
        )
        return self.backend.handle(req, timeout=self.timeout)

    def keyed(
        self,
        method: str,
        model: dict[str, Any],
        key: str,
        *,
        owner: str = "",
        ttl: float = 3600.0,
    ) -> tuple[Answer, bool]:
        """A write with an idempotency key, as the hub sends it: ``(answer, replayed)``.

        ``answer`` is ``{"result": ...}`` or ``{"error": {...}}`` (a SyncError
        the store raised); ``replayed`` says the store answered from its record.
        IdempotencyKeyReused is raised, as it is never remembered.
        """
        assert method in WRITE_METHODS
        idempotency = IdempotencyKey(
            backend=self.backend.name,
            owner=owner,
            key=key,
            method=method,
            fingerprint=fingerprint(method, model),
            expires_at=time.time() + ttl,
        )
        req = Request(
            method=method,
            model=copy.deepcopy(model),
            options={"idempotencyKey": key},
            backend=self.backend.name,
            id_attribute=self.id_attribute,
            idempotency=idempotency,
        )
        try:
            result = self.backend.handle(req, timeout=self.timeout)
        except IdempotencyKeyReused:
            raise
        except SyncError as exc:
            if idempotency.replayed is not None:
                return idempotency.replayed, True
            return {"error": exc.to_public()}, False
        if idempotency.replayed is not None:
            return idempotency.replayed, True
        return {"result": result}, False

    def create(self, model: dict[str, Any]) -> Any:
        return self.sync("create", model)

    def read(self, model_id: Any = None, query: Any = None) -> Any:
        """One model by id, or (without an id) the list ``query`` selects."""
        model = {} if model_id is None else {self.id_attribute: model_id}
        return self.sync("read", model, {} if query is None else {"data": query})

    def query(self, query: Any) -> list[Any]:
        models: list[Any] = self.read(None, query)
        return models

    def update(self, model: dict[str, Any]) -> Any:
        return self.sync("update", model)

    def patch(self, model: dict[str, Any]) -> Any:
        return self.sync("patch", model)

    def delete(self, model_id: Any) -> Any:
        return self.sync("delete", {self.id_attribute: model_id})

    def ids(self, query: Any = None) -> list[Any]:
        return [m[self.id_attribute] for m in self.read(None, query)]

    def load(self, models: list[dict[str, Any]]) -> None:
        for model in models:
            self.create(copy.deepcopy(model))


def assert_json_equal(got: Any, expected: Any, what: str = "value") -> None:
    """Equal as JSON values (true is not 1; 2 and 2.0 are one number)."""
    assert json_equal(got, expected), f"{what}: expected {expected!r}, got {got!r}"


def _without_id(model: dict[str, Any], id_attribute: str) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k != id_attribute}


def run_concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Start every call in its own green thread at once; their results in order."""
    threads = [runner.spawn(call) for call in calls]
    return [thread.wait() for thread in threads]


def run_in_os_threads(calls: list[Callable[[], Any]], timeout: float = 60.0) -> list[Any]:
    """Run every call in its own OS thread, released together; their results in order.

    The first exception a call raised is raised here, after every thread ended.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[i] = call()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, call), daemon=True) for i, call in enumerate(calls)
    ]
    # Switching threads every few microseconds instead of every 5 ms makes a
    # check-then-write that is not atomic lose the race within a few runs.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
    finally:
        sys.setswitchinterval(interval)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"a call was still running after {timeout}s")
    if errors:
        raise errors[0]
    return results


class StoreConformance:
    """Base class of a store's conformance tests (not collected by itself).

    Class attributes a subclass may change:

    * ``supports_max_limit`` -- ``make(max_limit=N)`` works (default True).
    * ``unstorable_keys`` -- model keys from :data:`data.ODD_KEYS` the store
      refuses with BadRequest instead of storing.
    * ``atomic_patch`` -- concurrent patches of different fields of ONE
      model all survive (default True).
    * ``concurrency`` -- how many green threads write at once (default 20).
    * ``sync_timeout`` -- seconds one request may take before it fails.
    * ``supports_versions`` -- ``make(version_attribute="_version")`` gives a
      versioned store (default True).
    * ``supports_idempotency_keys`` -- the store remembers idempotency keys
      atomically with its writes (``remembers_keys = True``; default True).
    * ``version_threads`` -- how the version races (and the idempotency
      key race) run their writers:
      ``"green"`` (``backboneio.runner.spawn``, as under ``backboneio serve``)
      or ``"os"`` (real OS threads released together, for a store that is
      safe to call from several threads at once).
    """

    supports_max_limit: ClassVar[bool] = True
    unstorable_keys: ClassVar[tuple[str, ...]] = ()
    atomic_patch: ClassVar[bool] = True
    concurrency: ClassVar[int] = 20
    sync_timeout: ClassVar[float] = 30.0
    supports_versions: ClassVar[bool] = True
    version_threads: ClassVar[str] = "green"
    supports_idempotency_keys: ClassVar[bool] = True

    # -- fixtures -----------------------------------------------------------

    @pytest.fixture
    def make_store(self) -> MakeStore:
        pytest.fail(
            f"{type(self).__name__} must define a make_store fixture returning "
            "make(id_attribute='id') -> a fresh, empty store middleware",
            pytrace=False,
        )

    @pytest.fixture
    def store_client(self, make_store: MakeStore) -> StoreClient:
        """A client of a fresh, empty store with the default ``id`` attribute."""
        return self.client_for(make_store())

    @pytest.fixture
    def people(self, store_client: StoreClient) -> StoreClient:
        """:data:`data.PEOPLE` loaded into a fresh store, created in id order."""
        store_client.load(data.PEOPLE)
        return store_client

    def client_for(self, store: Middleware, id_attribute: str = "id") -> StoreClient:
        return StoreClient(store, id_attribute=id_attribute, timeout=self.sync_timeout)

    def versioned_client(
        self, make_store: MakeStore, version_attribute: str = VERSION, id_attribute: str = "id"
    ) -> StoreClient:
        """A client of a fresh, empty store keeping versions in ``version_attribute``."""
        if not self.supports_versions:
            pytest.skip(f"{type(self).__name__} keeps no versions")
        try:
            store = make_store(id_attribute=id_attribute, version_attribute=version_attribute)
        except TypeError as exc:
            if "version_attribute" not in str(exc):
                raise
            pytest.fail(
                f"{type(self).__name__}'s make() must accept version_attribute= "
                "(or set supports_versions = False)",
                pytrace=False,
            )
        return self.client_for(store, id_attribute=id_attribute)

    @pytest.fixture
    def versioned(self, make_store: MakeStore) -> StoreClient:
        """A client of a fresh, empty store versioned in ``_version``."""
        return self.versioned_client(make_store)

    def run_writers(self, calls: list[Callable[[], Any]]) -> list[Any]:
        """Run ``calls`` at once in the kind of threads ``version_threads`` names."""
        if self.version_threads == "os":
            return run_in_os_threads(calls, timeout=self.sync_timeout * 2)
        if self.version_threads != "green":
            pytest.fail(f"version_threads must be 'green' or 'os', not {self.version_threads!r}")
        return run_concurrently(calls)

    def pause(self) -> None:
        """Let the other writers of a race run (the kind of thread ``run_writers`` uses)."""
        if self.version_threads == "os":
            time.sleep(0)
        else:
            runner.sleep(0)

    # -- create ---------------------------------------------------------------

    def test_create_assigns_an_id(self, store_client: StoreClient) -> None:
        created = store_client.create({"title": "first"})
        assert isinstance(created.get("id"), (str, int)) and not isinstance(created["id"], bool)
        assert created["id"] not in ("", None)
        assert created["title"] == "first"
        assert store_client.read(created["id"]) == created

    def test_create_with_a_null_id_assigns_one(self, store_client: StoreClient) -> None:
        created = store_client.create({"id": None, "title": "x"})
        assert created["id"] is not None
        assert store_client.read(created["id"])["title"] == "x"

    def test_assigned_ids_are_distinct(self, store_client: StoreClient) -> None:
        ids = {store_client.create({"n": n})["id"] for n in range(10)}
        assert len(ids) == 10

    def test_create_keeps_a_client_given_string_id(self, store_client: StoreClient) -> None:
        created = store_client.create({"id": "given-1", "title": "mine"})
        assert created == {"id": "given-1", "title": "mine"}
        assert store_client.read("given-1") == created

    def test_create_keeps_a_client_given_integer_id(self, store_client: StoreClient) -> None:
        created = store_client.create({"id": 42, "title": "answer"})
        assert created == {"id": 42, "title": "answer"}
        got = store_client.read(42)
        assert got == created and type(got["id"]) is int

    def test_create_accepts_id_zero(self, store_client: StoreClient) -> None:
        store_client.create({"id": 0, "title": "zero"})
        assert store_client.read(0)["title"] == "zero"

    def test_create_with_a_taken_id_is_a_conflict(self, store_client: StoreClient) -> None:
        store_client.create({"id": "dup", "v": 1})
        with pytest.raises(Conflict):
            store_client.create({"id": "dup", "v": 2})
        assert store_client.read("dup") == {"id": "dup", "v": 1}
        assert len(store_client.read()) == 1

    def test_create_does_not_keep_the_callers_object(self, store_client: StoreClient) -> None:
        model: dict[str, Any] = {"id": "a", "tags": ["x"]}
        created = store_client.create(model)
        model["tags"].append("changed-after")
        created["tags"].append("changed-result")
        assert store_client.read("a") == {"id": "a", "tags": ["x"]}

    # -- read ---------------------------------------------------------------

    def test_read_one(self, people: StoreClient) -> None:
        assert people.read("p4") == data.PEOPLE[3]

    def test_read_missing_is_not_found(self, people: StoreClient) -> None:
        with pytest.raises(NotFound):
            people.read("nobody")

    def test_read_all(self, people: StoreClient) -> None:
        got = people.read()
        assert sorted(got, key=lambda m: m["id"]) == data.PEOPLE

    def test_read_all_of_an_empty_store(self, store_client: StoreClient) -> None:
        assert store_client.read() == []
        assert store_client.sync("read", {}, {"data": None}) == []

    def test_read_results_are_copies(self, people: StoreClient) -> None:
        people.read("p1")["name"] = "changed"
        people.read()[0]["extra"] = 1
        assert people.read("p1") == data.PEOPLE[0]

    # -- update ---------------------------------------------------------------

    def test_update_replaces_the_model(self, store_client: StoreClient) -> None:
        store_client.create({"id": "u", "a": 1, "b": 2})
        updated = store_client.update({"id": "u", "c": 3})
        assert updated == {"id": "u", "c": 3}
        assert store_client.read("u") == {"id": "u", "c": 3}

    def test_update_missing_is_not_found(self, store_client: StoreClient) -> None:
        with pytest.raises(NotFound):
            store_client.update({"id": "ghost", "a": 1})
        assert store_client.read() == []

    # -- patch ----------------------------------------------------------------

    def test_patch_merges_and_returns_the_whole_model(self, store_client: StoreClient) -> None:
        store_client.create({"id": "p", "a": 1, "b": {"x": 1, "y": 2}, "c": "keep"})
        patched = store_client.patch({"id": "p", "a": 2, "b": {"x": 9}, "d": None})
        # Patches merge at the top level only: a nested object is replaced whole.
        expected = {"id": "p", "a": 2, "b": {"x": 9}, "c": "keep", "d": None}
        assert patched == expected
        assert store_client.read("p") == expected

    def test_patch_missing_is_not_found(self, store_client: StoreClient) -> None:
        with pytest.raises(NotFound):
            store_client.patch({"id": "ghost", "a": 1})
        assert store_client.read() == []

    # -- delete ---------------------------------------------------------------

    def test_delete_returns_the_model(self, people: StoreClient) -> None:
        assert people.delete("p2") == data.PEOPLE[1]
        with pytest.raises(NotFound):
            people.read("p2")
        assert sorted(people.ids()) == sorted(data.ALL - {"p2"})

    def test_delete_missing_is_not_found(self, people: StoreClient) -> None:
        people.delete("p2")
        with pytest.raises(NotFound):
            people.delete("p2")
        with pytest.raises(NotFound):
            people.delete("never")
        assert len(people.read()) == len(data.PEOPLE) - 1

    def test_an_id_can_be_reused_after_delete(self, store_client: StoreClient) -> None:
        store_client.create({"id": "again", "v": 1})
        store_client.delete("again")
        assert store_client.create({"id": "again", "v": 2}) == {"id": "again", "v": 2}

    # -- a custom id attribute ------------------------------------------------

    def test_custom_id_attribute(self, make_store: MakeStore) -> None:
        client = self.client_for(make_store(id_attribute="_id"), id_attribute="_id")
        created = client.create({"title": "mongo-style", "id": "just data"})
        model_id = created["_id"]
        assert model_id is not None and created["id"] == "just data"
        assert client.read(model_id) == created
        given = client.create({"_id": "mine", "n": 1})
        assert given == {"_id": "mine", "n": 1}
        with pytest.raises(Conflict):
            client.create({"_id": "mine"})
        assert client.patch({"_id": "mine", "m": 2}) == {"_id": "mine", "n": 1, "m": 2}
        assert client.update({"_id": "mine", "z": 0}) == {"_id": "mine", "z": 0}
        assert client.query({"$select": ["title"], "title": "mongo-style"}) == [
            {"_id": model_id, "title": "mongo-style"}
        ]
        assert [m["_id"] for m in client.query({"$sort": {"z": 1}})] == [model_id, "mine"]
        assert client.delete("mine") == {"_id": "mine", "z": 0}
        with pytest.raises(NotFound):
            client.read("mine")

    # -- ids of the wrong type ------------------------------------------------

    @pytest.mark.parametrize("bad_id", [{"a": 1}, ["x"], True, False, 1.5])
    def test_create_with_an_id_of_the_wrong_type_is_refused(
        self, store_client: StoreClient, bad_id: Any
    ) -> None:
        with pytest.raises(BadRequest):
            store_client.create({"id": bad_id, "v": 1})
        assert store_client.read() == []

    @pytest.mark.parametrize("method", ["read", "update", "patch", "delete"])
    @pytest.mark.parametrize("bad_id", [{"a": 1}, ["p1"], True])
    def test_other_methods_refuse_an_id_of_the_wrong_type(
        self, people: StoreClient, method: str, bad_id: Any
    ) -> None:
        with pytest.raises(BadRequest):
            people.sync(method, {"id": bad_id, "v": 1})
        assert sorted(people.read(), key=lambda m: m["id"]) == data.PEOPLE

    # -- values and keys round-trip -------------------------------------------

    def test_values_round_trip_exactly(self, store_client: StoreClient) -> None:
        model = {"id": "odd", **data.ODD_VALUES}
        assert_json_equal(store_client.create(copy.deepcopy(model)), model, "create result")
        assert_json_equal(store_client.read("odd"), model, "read one")
        assert_json_equal(store_client.read(), [model], "read all")
        patch = {"id": "odd", "emoji": "🚀", "nested": {"again": ["עברית", 2**53 - 1]}}
        assert_json_equal(store_client.patch(copy.deepcopy(patch)), {**model, **patch}, "patch")
        assert_json_equal(store_client.read("odd"), {**model, **patch}, "read after patch")

    @pytest.mark.parametrize("field", sorted(data.ODD_VALUES))
    def test_each_odd_value_can_be_queried_by_equality(
        self, store_client: StoreClient, field: str
    ) -> None:
        value = data.ODD_VALUES[field]
        store_client.create({"id": "hit", field: copy.deepcopy(value)})
        store_client.create({"id": "miss", field: "something else"})
        assert store_client.ids({field: copy.deepcopy(value)}) == ["hit"]

    def test_unicode_ids_round_trip(self, store_client: StoreClient) -> None:
        for model_id in ("ünïcødé", "😀", "שלום", "with space/and:colon"):
            store_client.create({"id": model_id, "v": model_id})
            assert store_client.read(model_id) == {"id": model_id, "v": model_id}

    @pytest.mark.parametrize("key", data.ODD_KEYS)
    def test_model_keys_round_trip_or_are_refused(
        self, store_client: StoreClient, key: str
    ) -> None:
        model = {"id": "k", key: "value"}
        if key in self.unstorable_keys:
            with pytest.raises(BadRequest):
                store_client.create(model)
            assert store_client.read() == []
            return
        assert store_client.create(dict(model)) == model
        assert store_client.read("k") == model
        assert store_client.ids({key: "value"}) == ["k"]

    # -- queries ----------------------------------------------------------------

    @pytest.mark.parametrize(
        ("query", "expected"), data.FILTER_CASES, ids=[repr(q) for q, _ in data.FILTER_CASES]
    )
    def test_query_filters(self, people: StoreClient, query: Any, expected: set[str]) -> None:
        got = people.query(copy.deepcopy(query))
        assert sorted(m["id"] for m in got) == sorted(expected)
        by_id = {p["id"]: p for p in data.PEOPLE}
        assert all(m == by_id[m["id"]] for m in got), "query answers must be whole models"

    @pytest.mark.parametrize(
        ("query", "expected"), data.ORDER_CASES, ids=[repr(q) for q, _ in data.ORDER_CASES]
    )
    def test_query_sorts_and_pages(
        self, people: StoreClient, query: Any, expected: list[str]
    ) -> None:
        assert people.ids(copy.deepcopy(query)) == expected

    def test_sort_orders_mixed_types(self, store_client: StoreClient) -> None:
        store_client.load(data.MIXED)
        assert store_client.ids({"$sort": {"v": 1}}) == data.MIXED_ASCENDING
        assert store_client.ids({"$sort": {"v": -1}}) == data.MIXED_DESCENDING

    def test_sort_numbers_by_value_not_text(self, store_client: StoreClient) -> None:
        for n, value in enumerate([10, 9, 100, -1, 2.5, 2**53 - 1]):
            store_client.create({"id": f"n{n}", "v": value})
        assert [m["v"] for m in store_client.query({"$sort": {"v": 1}})] == [
            -1,
            2.5,
            9,
            10,
            100,
            2**53 - 1,
        ]

    def test_paging_walks_every_model_once(self, people: StoreClient) -> None:
        order = {"$sort": {"age": 1, "name": 1}}
        everything = people.ids(order)
        walked: list[str] = []
        for skip in range(0, len(everything) + 3, 3):
            walked += people.ids({**order, "$skip": skip, "$limit": 3})
        assert walked == everything

    def test_select_returns_only_the_id_and_the_fields(self, people: StoreClient) -> None:
        got = people.query({"$select": ["name", "nick"], "$sort": {"age": 1, "name": 1}})
        assert got[:3] == [
            {"id": "p6", "name": "Zoë", "nick": "z"},
            {"id": "p2", "name": "Bob", "nick": None},
            {"id": "p3", "name": "Cleo"},
        ]
        assert len(got) == len(data.PEOPLE)

    def test_select_nothing_returns_ids(self, people: StoreClient) -> None:
        got = people.query({"$select": [], "age": 25})
        assert sorted(got, key=lambda m: m["id"]) == [{"id": "p2"}, {"id": "p3"}, {"id": "p8"}]

    def test_select_with_filter_sort_and_paging(self, people: StoreClient) -> None:
        got = people.query(
            {"active": True, "$select": ["score"], "$sort": {"score": -1}, "$skip": 1, "$limit": 2}
        )
        assert got == [{"id": "p1", "score": 9.5}, {"id": "p3", "score": 8.0}]

    @pytest.mark.parametrize("query", data.BAD_QUERIES, ids=[repr(q) for q in data.BAD_QUERIES])
    def test_malformed_query_is_a_bad_request(self, people: StoreClient, query: Any) -> None:
        with pytest.raises(BadRequest):
            people.query(query)
        # The store keeps serving after refusing a query.
        assert len(people.read()) == len(data.PEOPLE)

    def test_unknown_operator_is_named_in_the_error(self, people: StoreClient) -> None:
        with pytest.raises(BadRequest) as info:
            people.query({"age": {"$between": [1, 2]}})
        assert "$between" in info.value.message

    def test_max_limit_caps_reads(self, make_store: MakeStore) -> None:
        if not self.supports_max_limit:
            pytest.skip(f"{type(self).__name__} has no max_limit setting")
        client = self.client_for(make_store(max_limit=3))
        client.load(data.PEOPLE)
        order = {"$sort": {"age": 1, "name": 1}}
        assert client.ids(order) == ["p6", "p2", "p3"]
        assert client.ids({**order, "$limit": 100}) == ["p6", "p2", "p3"]
        assert client.ids({**order, "$limit": 2}) == ["p6", "p2"]
        assert client.ids({**order, "$skip": 6, "$limit": 100}) == ["p4", "p7"]
        assert len(client.read()) == 3

    # -- concurrency ----------------------------------------------------------

    def test_concurrent_writers_lose_nothing(self, store_client: StoreClient) -> None:
        n = self.concurrency

        def writer(i: int) -> Any:
            runner.sleep(0)
            store_client.create({"id": f"w{i:03}", "writer": i, "text": f"from {i} ✓"})
            runner.sleep(0)
            store_client.patch({"id": f"w{i:03}", "patched": i * 10})
            runner.sleep(0)
            return store_client.patch({"id": f"w{i:03}", "again": [i]})

        results = run_concurrently([functools.partial(writer, i) for i in range(n)])
        expected = [
            {"id": f"w{i:03}", "writer": i, "text": f"from {i} ✓", "patched": i * 10, "again": [i]}
            for i in range(n)
        ]
        assert results == expected
        assert sorted(store_client.read(), key=lambda m: m["id"]) == expected

    def test_concurrent_creates_of_one_id_make_one_model(self, store_client: StoreClient) -> None:
        def create(i: int) -> str:
            runner.sleep(0)
            try:
                store_client.create({"id": "contested", "by": i})
            except Conflict:
                return "conflict"
            return "created"

        outcomes = run_concurrently([functools.partial(create, i) for i in range(self.concurrency)])
        assert outcomes.count("created") == 1
        assert outcomes.count("conflict") == self.concurrency - 1
        assert len(store_client.read()) == 1

    def test_concurrent_patches_of_one_model_keep_every_field(
        self, store_client: StoreClient
    ) -> None:
        if not self.atomic_patch:
            pytest.skip(f"{type(self).__name__} does not promise atomic patches")
        store_client.create({"id": "shared"})

        def patch(i: int) -> Any:
            runner.sleep(0)
            return store_client.patch({"id": "shared", f"f{i:03}": i})

        run_concurrently([functools.partial(patch, i) for i in range(self.concurrency)])
        expected = {"id": "shared", **{f"f{i:03}": i for i in range(self.concurrency)}}
        assert store_client.read("shared") == expected

    # -- versions and conflicts (docs/conflicts.md) ---------------------------

    def test_versioned_create_starts_at_version_one(self, versioned: StoreClient) -> None:
        created = versioned.create({"title": "a"})
        assert created == {"id": created["id"], "title": "a", VERSION: 1}
        assert versioned.read(created["id"]) == created
        # The client never sets the version: whatever a create sends is ignored.
        for sent in (7, 0, None, "junk", [1]):
            given = versioned.create({"title": "b", VERSION: sent})
            assert given[VERSION] == 1
            assert versioned.read(given["id"])[VERSION] == 1

    def test_every_update_and_patch_adds_one(self, versioned: StoreClient) -> None:
        versioned.create({"id": "v", "n": 0})
        assert versioned.update({"id": "v", "n": 1, VERSION: 1}) == {"id": "v", "n": 1, VERSION: 2}
        assert versioned.patch({"id": "v", "m": 2, VERSION: 2}) == {
            "id": "v",
            "n": 1,
            "m": 2,
            VERSION: 3,
        }
        # Without a version (or with null) a write is unconditional, and still counts.
        assert versioned.update({"id": "v", "n": 3}) == {"id": "v", "n": 3, VERSION: 4}
        assert versioned.patch({"id": "v", "m": 4}) == {"id": "v", "n": 3, "m": 4, VERSION: 5}
        assert versioned.update({"id": "v", "k": 5, VERSION: None})[VERSION] == 6
        assert versioned.patch({"id": "v", VERSION: 6}) == {"id": "v", "k": 5, VERSION: 7}
        assert versioned.read("v") == {"id": "v", "k": 5, VERSION: 7}
        assert versioned.query({VERSION: 7}) == [{"id": "v", "k": 5, VERSION: 7}]

    @pytest.mark.parametrize("method", ["update", "patch", "delete"])
    def test_a_write_from_another_version_is_a_conflict_with_the_current_model(
        self, versioned: StoreClient, method: str
    ) -> None:
        versioned.create({"id": "c", "text": "first"})
        current = versioned.update({"id": "c", "text": "second", VERSION: 1})
        assert current[VERSION] == 2
        for sent in (1, 3, 0, 2**53 - 1):  # older, newer, none yet, far off
            with pytest.raises(Conflict) as info:
                versioned.sync(method, {"id": "c", "text": "stale", VERSION: sent})
            assert info.value.status == 409
            assert info.value.details["current"] == current
            public = info.value.to_public()
            assert public["name"] == "Conflict" and public["current"] == current
            # Nothing was written, and the version did not move.
            info.value.details["current"]["text"] = "changed by the caller"
            assert versioned.read("c") == current
        assert versioned.read() == [current]

    def test_a_write_from_the_current_version_succeeds(self, versioned: StoreClient) -> None:
        versioned.create({"id": "d", "n": 1})
        versioned.patch({"id": "d", "n": 2, VERSION: 1})
        deleted = versioned.sync("delete", {"id": "d", VERSION: 2})
        assert deleted == {"id": "d", "n": 2, VERSION: 2}
        with pytest.raises(NotFound):
            versioned.read("d")

    def test_an_unconditional_delete_deletes(self, versioned: StoreClient) -> None:
        versioned.create({"id": "u"})
        versioned.update({"id": "u", "n": 1})
        assert versioned.delete("u") == {"id": "u", "n": 1, VERSION: 2}
        assert versioned.read() == []

    @pytest.mark.parametrize("method", ["update", "patch", "delete"])
    def test_a_versioned_write_of_a_missing_model_is_not_found(
        self, versioned: StoreClient, method: str
    ) -> None:
        versioned.create({"id": "here"})
        versioned.delete("here")
        with pytest.raises(NotFound):
            versioned.sync(method, {"id": "here", VERSION: 1})
        with pytest.raises(NotFound):
            versioned.sync(method, {"id": "never", "x": 1})
        assert versioned.read() == []

    @pytest.mark.parametrize("method", ["update", "patch", "delete"])
    def test_a_version_that_is_not_a_version_is_a_bad_request(
        self, versioned: StoreClient, method: str
    ) -> None:
        stored = versioned.create({"id": "b", "n": 1})
        for bad in ("1", 1.5, True, [1], {"v": 1}, -1):
            with pytest.raises(BadRequest) as info:
                versioned.sync(method, {"id": "b", "n": 2, VERSION: bad})
            assert VERSION in info.value.message, bad
            assert versioned.read() == [stored], bad

    def test_versions_never_go_backwards(self, versioned: StoreClient) -> None:
        versioned.create({"id": "m"})
        seen = [1]
        for step in range(6):
            sent = seen[-1] if step % 2 else 1  # every other write is stale
            try:
                seen.append(versioned.patch({"id": "m", "step": step, VERSION: sent})[VERSION])
            except Conflict as exc:
                assert exc.details["current"][VERSION] == seen[-1]
            seen.append(versioned.read("m")[VERSION])
        assert seen == sorted(seen) and seen[-1] > 1
        assert versioned.read("m")[VERSION] == seen[-1]

    def test_the_version_attribute_can_be_named(self, make_store: MakeStore) -> None:
        client = self.versioned_client(make_store, "rev", id_attribute="_id")
        created = client.create({"_id": "r", VERSION: 9, "rev": 5})
        # Only the configured attribute is the version; _version is data here.
        assert created == {"_id": "r", VERSION: 9, "rev": 1}
        assert client.patch({"_id": "r", "rev": 1, VERSION: 0})["rev"] == 2
        with pytest.raises(Conflict) as info:
            client.update({"_id": "r", "rev": 1})
        assert info.value.details["current"] == {"_id": "r", VERSION: 0, "rev": 2}
        assert client.sync("delete", {"_id": "r", "rev": 2})["rev"] == 2

    def test_an_unversioned_store_keeps_a_version_attribute_as_data(
        self, store_client: StoreClient
    ) -> None:
        store_client.create({"id": "plain", VERSION: 7})
        assert store_client.update({"id": "plain", VERSION: 3}) == {"id": "plain", VERSION: 3}
        assert store_client.patch({"id": "plain", VERSION: "x"}) == {"id": "plain", VERSION: "x"}

    # -- versions under concurrency ---------------------------------------------

    @pytest.mark.parametrize("method", ["update", "patch"])
    def test_concurrent_writers_from_one_version_one_wins(
        self, versioned: StoreClient, method: str
    ) -> None:
        versioned.create({"id": "race", "by": None})

        def write(i: int) -> Any:
            self.pause()
            try:
                return versioned.sync(method, {"id": "race", "by": i, f"f{i}": i, VERSION: 1})
            except Conflict as exc:
                return exc

        outcomes = self.run_writers([functools.partial(write, i) for i in range(self.concurrency)])
        won = [o for o in outcomes if not isinstance(o, Conflict)]
        lost = [o for o in outcomes if isinstance(o, Conflict)]
        assert len(won) == 1, f"{len(won)} writers from version 1 succeeded"
        assert len(lost) == self.concurrency - 1
        final = versioned.read("race")
        assert final == won[0] and final[VERSION] == 2
        winner = final["by"]
        assert final[f"f{winner}"] == winner
        assert not any(k.startswith("f") and k != f"f{winner}" for k in final)
        assert all(exc.details["current"] == final for exc in lost)

    def test_concurrent_deletes_and_writes_from_one_version_one_wins(
        self, versioned: StoreClient
    ) -> None:
        versioned.create({"id": "mixed"})
        methods = ["delete", "update", "patch"]

        def write(i: int) -> str:
            self.pause()
            try:
                versioned.sync(methods[i % 3], {"id": "mixed", "by": i, VERSION: 1})
            except (Conflict, NotFound):
                return "refused"
            return methods[i % 3]

        outcomes = self.run_writers([functools.partial(write, i) for i in range(self.concurrency)])
        winners = [o for o in outcomes if o != "refused"]
        assert len(winners) == 1, outcomes
        if winners == ["delete"]:
            assert versioned.read() == []
        else:
            assert versioned.read("mixed")[VERSION] == 2

    def test_optimistic_retries_lose_no_increment(self, versioned: StoreClient) -> None:
        """Read, add one, write back from the version read; on Conflict, again."""
        writers = min(self.concurrency, 10)
        versioned.create({"id": "counter", "n": 0})

        def increment() -> int:
            for attempt in range(1, writers * 3 + 1):
                seen = versioned.read("counter")
                self.pause()
                try:
                    versioned.update({**seen, "n": seen["n"] + 1})
                except Conflict:
                    continue
                return attempt
            raise AssertionError("no write succeeded")

        attempts = self.run_writers([increment for _ in range(writers)])
        final = versioned.read("counter")
        assert final["n"] == writers
        assert final[VERSION] == writers + 1
        assert sum(attempts) >= writers

    # -- idempotency keys (docs/idempotency.md) ---------------------------------

    @pytest.fixture
    def keyed(self, make_store: MakeStore) -> StoreClient:
        """A client of a fresh, empty store that remembers idempotency keys."""
        if not self.supports_idempotency_keys:
            pytest.skip(f"{type(self).__name__} remembers no idempotency keys")
        store = make_store()
        if getattr(store, "remembers_keys", False) is not True:
            pytest.fail(
                f"{type(self).__name__}'s store does not say remembers_keys = True "
                "(or set supports_idempotency_keys = False)",
                pytrace=False,
            )
        return self.client_for(store)

    def test_a_repeated_create_answers_the_first_result_and_writes_once(
        self, keyed: StoreClient
    ) -> None:
        first, replayed = keyed.keyed("create", {"title": "milk"}, "k-create")
        assert not replayed and "result" in first, first
        created = first["result"]
        for _ in range(3):
            again, replayed = keyed.keyed("create", {"title": "milk"}, "k-create")
            assert replayed, "a repeat must be answered from the key's record"
            assert again == first
        assert keyed.read() == [created]

    @pytest.mark.parametrize("method", ["update", "patch", "delete"])
    def test_a_repeated_write_is_not_applied_again(self, keyed: StoreClient, method: str) -> None:
        keyed.create({"id": "m", "n": 0})
        first, _ = keyed.keyed(method, {"id": "m", "n": 1}, f"k-{method}")
        # delete answers the model it deleted
        assert first == {"result": {"id": "m", "n": 0 if method == "delete" else 1}}
        # Someone else writes in between; a repeat of the first write must not undo it.
        later = {"id": "m", "n": 2, "by": "someone else"}
        if method == "delete":
            keyed.create(later)
        else:
            keyed.update(later)
        again, replayed = keyed.keyed(method, {"id": "m", "n": 1}, f"k-{method}")
        assert replayed and again == first
        assert keyed.read() == [later]

    def test_a_4xx_answer_is_remembered_too(self, keyed: StoreClient) -> None:
        first, replayed = keyed.keyed("patch", {"id": "ghost", "n": 1}, "k-missing")
        assert not replayed and first["error"]["name"] == "NotFound", first
        keyed.create({"id": "ghost", "n": 0})
        again, replayed = keyed.keyed("patch", {"id": "ghost", "n": 1}, "k-missing")
        assert replayed and again == first
        assert keyed.read("ghost") == {"id": "ghost", "n": 0}

    def test_a_retried_versioned_update_gets_its_result_not_a_conflict(
        self, make_store: MakeStore
    ) -> None:
        if not self.supports_idempotency_keys:
            pytest.skip(f"{type(self).__name__} remembers no idempotency keys")
        client = self.versioned_client(make_store)
        client.create({"id": "v", "n": 0})
        write = {"id": "v", "n": 1, VERSION: 1}
        first, _ = client.keyed("update", write, "k-versioned")
        assert first == {"result": {"id": "v", "n": 1, VERSION: 2}}
        again, replayed = client.keyed("update", write, "k-versioned")
        assert replayed and again == first
        assert client.read("v")[VERSION] == 2

    def test_the_same_key_for_another_write_is_refused_and_writes_nothing(
        self, keyed: StoreClient
    ) -> None:
        first, _ = keyed.keyed("create", {"id": "r", "title": "a"}, "k-reused")
        others: list[tuple[str, dict[str, Any]]] = [
            ("create", {"id": "r2", "title": "b"}),  # another model
            ("create", {"id": "r", "title": "a", "extra": 1}),
            ("patch", {"id": "r", "title": "a"}),  # another method
            ("delete", {"id": "r"}),
        ]
        for method, model in others:
            with pytest.raises(IdempotencyKeyReused) as info:
                keyed.keyed(method, model, "k-reused")
            assert info.value.status == 422 and info.value.name == "IdempotencyKeyReused"
            assert keyed.read() == [first["result"]], (method, model)
        # The key still answers its own request.
        assert keyed.keyed("create", {"id": "r", "title": "a"}, "k-reused") == (first, True)

    def test_keys_are_scoped_by_owner_and_forgotten_when_expired(self, keyed: StoreClient) -> None:
        alice, _ = keyed.keyed("create", {"title": "x"}, "k-scope", owner="alice")
        bob, replayed = keyed.keyed("create", {"title": "x"}, "k-scope", owner="bob")
        assert not replayed and bob["result"]["id"] != alice["result"]["id"]
        gone, _ = keyed.keyed("create", {"title": "y"}, "k-expired", ttl=-1.0)
        again, replayed = keyed.keyed("create", {"title": "y"}, "k-expired")
        assert not replayed and again["result"]["id"] != gone["result"]["id"]
        assert len(keyed.read()) == 4

    def test_concurrent_creates_with_one_key_make_one_model(self, keyed: StoreClient) -> None:
        def create() -> Answer:
            self.pause()
            return keyed.keyed("create", {"title": "once"}, "k-race")[0]

        answers = self.run_writers([create for _ in range(self.concurrency)])
        models = keyed.read()
        assert len(models) == 1, f"{len(models)} models from one key"
        assert all(answer == {"result": models[0]} for answer in answers), answers
