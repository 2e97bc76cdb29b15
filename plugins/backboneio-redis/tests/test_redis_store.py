"""The redis store in-process, through a backend, against a real redis-server."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from backboneio import BadRequest, ConfigurationError, Conflict, NotFound, Unavailable
from backboneio.backend import Backend, Request
from backboneio_redis import RedisStore, make_store

pytestmark = pytest.mark.redis


def call(
    store: RedisStore,
    method: str,
    model: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    backend = Backend("messages", id_attribute=store.id_attribute).use(store)
    req = Request(method, model or {}, options or {}, id_attribute=store.id_attribute)
    return backend.handle(req)


def test_create_assigns_an_id_that_read_finds(redis_store: RedisStore) -> None:
    created = call(redis_store, "create", {"text": "hi"})
    assert isinstance(created["id"], str) and created["text"] == "hi"
    assert call(redis_store, "read", {"id": created["id"]}) == created


def test_values_come_back_as_json_types(redis_store: RedisStore) -> None:
    model = {
        "id": 7,
        "big": 2**80,
        "pi": 3.141592653589793,
        "none": None,
        "yes": True,
        "nested": {"a": [1, {"b": "ü€😀"}], "empty": {}},
        "list": [],
        "": "empty name",
    }
    assert call(redis_store, "create", model) == model
    assert call(redis_store, "read", {"id": 7}) == model


ODD_NAMES = [
    "",
    'quote"d',
    "back\\slash",
    "/slash",
    "tab\tnew\nline",
    "nul\x00",
    "\u2028",
    "ünï😀",
    "\x7f",
    "{}",
    "[1]",
    "123",
]


def test_attribute_names_of_any_text_round_trip(redis_store: RedisStore) -> None:
    # The store writes names into JSON inside Redis (model_json); escaping
    # must be exact for every one of them, including in lists and patches.
    model = {"id": "odd", **{name: name for name in ODD_NAMES}}
    assert call(redis_store, "create", model) == model
    assert call(redis_store, "read", {"id": "odd"}) == model
    assert call(redis_store, "read") == [model]
    patch = {"id": "odd", **{name: [name] for name in ODD_NAMES}}
    assert call(redis_store, "patch", patch) == patch
    assert call(redis_store, "delete", {"id": "odd"}) == patch


def test_an_attribute_name_that_is_not_unicode_text_is_refused(redis_store: RedisStore) -> None:
    with pytest.raises(BadRequest, match="not valid Unicode text"):
        call(redis_store, "create", {"id": 1, "\ud800": 1})
    assert redis_store.count() == 0
    # In a value it is only data, escaped in the stored JSON.
    assert call(redis_store, "create", {"id": 2, "v": "\ud800"}) == {"id": 2, "v": "\ud800"}


def test_integer_and_string_ids_are_different_models(redis_store: RedisStore) -> None:
    call(redis_store, "create", {"id": 1, "kind": "int"})
    call(redis_store, "create", {"id": "1", "kind": "str"})
    assert call(redis_store, "read", {"id": 1})["kind"] == "int"
    assert call(redis_store, "read", {"id": "1"})["kind"] == "str"


def test_creating_an_existing_id_is_a_conflict_and_keeps_the_first(redis_store: RedisStore) -> None:
    call(redis_store, "create", {"id": "a", "v": 1})
    with pytest.raises(Conflict):
        call(redis_store, "create", {"id": "a", "v": 2})
    assert call(redis_store, "read", {"id": "a"}) == {"id": "a", "v": 1}


def test_concurrent_creates_of_one_id_store_exactly_one(redis_store: RedisStore) -> None:
    def attempt(n: int) -> str:
        try:
            call(redis_store, "create", {"id": "same", "n": n})
        except Conflict:
            return "conflict"
        return "created"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(40)))
    assert outcomes.count("created") == 1
    assert redis_store.count() == 1


@pytest.mark.parametrize("bad_id", [1.5, True, [1], {"a": 1}])
def test_ids_of_the_wrong_type_are_refused_and_nothing_is_written(
    redis_store: RedisStore, bad_id: Any
) -> None:
    for method in ("create", "update", "patch", "delete", "read"):
        with pytest.raises(BadRequest, match="id must be a string or an integer"):
            call(redis_store, method, {"id": bad_id, "x": 1})
    assert redis_store.count() == 0
    assert list(redis_store.client.scan_iter(f"{redis_store.prefix}:*")) == []


def test_update_replaces_the_whole_model(redis_store: RedisStore) -> None:
    call(redis_store, "create", {"id": "m", "a": 1, "b": 2})
    assert call(redis_store, "update", {"id": "m", "a": 10}) == {"id": "m", "a": 10}
    assert call(redis_store, "read", {"id": "m"}) == {"id": "m", "a": 10}


def test_patch_merges_and_returns_the_whole_model(redis_store: RedisStore) -> None:
    call(redis_store, "create", {"id": "m", "a": 1, "b": {"deep": 1}})
    assert call(redis_store, "patch", {"id": "m", "b": {"other": 2}, "c": 3}) == {
        "id": "m",
        "a": 1,
        "b": {"other": 2},
        "c": 3,
    }


@pytest.mark.parametrize("method", ["update", "patch", "delete", "read"])
def test_a_missing_model_is_not_found_and_not_created(redis_store: RedisStore, method: str) -> None:
    with pytest.raises(NotFound):
        call(redis_store, method, {"id": "ghost", "a": 1})
    assert redis_store.count() == 0
    assert not redis_store.client.exists(f'{redis_store.prefix}:model:"ghost"')


def test_delete_returns_the_model_and_removes_it_everywhere(redis_store: RedisStore) -> None:
    call(redis_store, "create", {"id": "a", "v": 1})
    call(redis_store, "create", {"id": "b", "v": 2})
    assert call(redis_store, "delete", {"id": "a"}) == {"id": "a", "v": 1}
    assert call(redis_store, "read") == [{"id": "b", "v": 2}]
    with pytest.raises(NotFound):
        call(redis_store, "patch", {"id": "a", "v": 3})
    assert call(redis_store, "read") == [{"id": "b", "v": 2}]


def test_concurrent_patches_never_lose_updates(redis_store: RedisStore) -> None:
    ids = [f"m{i}" for i in range(5)]
    for model_id in ids:
        call(redis_store, "create", {"id": model_id})

    def patch(job: tuple[str, int]) -> None:
        model_id, n = job
        call(redis_store, "patch", {"id": model_id, f"field{n}": n})

    jobs = [(model_id, n) for model_id in ids for n in range(20)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(patch, jobs))
    for model_id in ids:
        model = call(redis_store, "read", {"id": model_id})
        assert model == {"id": model_id, **{f"field{n}": n for n in range(20)}}


def test_a_patch_racing_a_delete_never_resurrects_the_model(redis_store: RedisStore) -> None:
    for i in range(30):
        call(redis_store, "create", {"id": i})

    def patch(i: int) -> str:
        try:
            call(redis_store, "patch", {"id": i, "late": True})
        except NotFound:
            return "gone"
        return "patched"

    with ThreadPoolExecutor(4) as pool:
        deletes = [pool.submit(call, redis_store, "delete", {"id": i}) for i in range(30)]
        patches = list(pool.map(patch, range(30)))
        for d in deletes:
            d.result()
    assert set(patches) <= {"gone", "patched"}
    assert call(redis_store, "read") == []
    assert list(redis_store.client.scan_iter(f"{redis_store.prefix}:model:*")) == []


def test_a_list_read_returns_models_in_creation_order_across_chunks(redis_server: Any) -> None:
    store = make_store(redis_server.url, prefix=f"test:{uuid.uuid4().hex}")
    try:
        for i in range(11):
            call(store, "create", {"id": 100 - i, "n": i})
        assert [m["n"] for m in store.scan(chunk=3)] == list(range(11))
        assert [m["n"] for m in call(store, "read")] == list(range(11))
    finally:
        store.clear()


def test_a_list_read_applies_the_query(redis_store: RedisStore) -> None:
    for i in range(6):
        call(redis_store, "create", {"id": i, "even": i % 2 == 0})
    found = call(redis_store, "read", options={"data": {"even": True, "$limit": 2}})
    assert [m["id"] for m in found] == [0, 2]


def test_a_bad_query_is_a_bad_request(redis_store: RedisStore) -> None:
    call(redis_store, "create", {"id": 1})
    with pytest.raises(BadRequest):
        call(redis_store, "read", options={"data": {"$nonsense": 1}})
    with pytest.raises(BadRequest):
        call(redis_store, "read", options={"data": "not an object"})


def test_max_limit_caps_a_list_read(redis_server: Any) -> None:
    store = make_store(redis_server.url, prefix=f"test:{uuid.uuid4().hex}", max_limit=2)
    try:
        for i in range(5):
            call(store, "create", {"id": i})
        assert len(call(store, "read")) == 2
    finally:
        store.clear()


def test_the_data_layout_is_one_hash_per_model_and_a_sorted_set_of_ids(
    redis_store: RedisStore,
) -> None:
    call(redis_store, "create", {"id": "x", "text": "hi"})
    call(redis_store, "create", {"id": 2})
    client, prefix = redis_store.client, redis_store.prefix
    assert client.hgetall(f'{prefix}:model:"x"') == {b"id": b'"x"', b"text": b'"hi"'}
    assert client.zrange(f"{prefix}:ids", 0, -1) == [b'"x"', b"2"]
    assert client.get(f"{prefix}:seq") == b"2"


def test_two_stores_with_different_prefixes_do_not_see_each_other(redis_server: Any) -> None:
    one = make_store(redis_server.url, prefix=f"test:{uuid.uuid4().hex}")
    two = make_store(redis_server.url, prefix=f"test:{uuid.uuid4().hex}")
    try:
        call(one, "create", {"id": 1})
        assert call(two, "read") == []
        with pytest.raises(NotFound):
            call(two, "read", {"id": 1})
    finally:
        one.clear()
        two.clear()


def test_redis_down_is_unavailable_without_the_password_and_recovers(own_redis_server: Any) -> None:
    store = make_store(own_redis_server.url, prefix="down", backend="messages", timeout=2)
    call(store, "create", {"id": 1})
    own_redis_server.stop()
    for method, model in [
        ("create", {"id": 2}),
        ("read", {"id": 1}),
        ("read", {}),
        ("patch", {"id": 1, "a": 1}),
        ("delete", {"id": 1}),
    ]:
        with pytest.raises(Unavailable) as caught:
            call(store, method, model)
        message = str(caught.value.to_public())
        assert own_redis_server.password not in message
        assert "redis://" not in message and str(own_redis_server.port) not in message
    own_redis_server.start()
    # A fresh redis-server without persistence: the old model is gone, the
    # store works again on the same client without being rebuilt.
    assert call(store, "create", {"id": 3}) == {"id": 3}
    assert call(store, "read") == [{"id": 3}]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://127.0.0.1/"}, "Cannot use Redis URL"),
        ({"url": 5}, "must be a redis:// URL"),
        ({"prefix": ""}, "prefix must be a non-empty string"),
        ({"max_limit": 0}, "max_limit must be None or a positive integer"),
        ({"timeout": "soon"}, "timeout must be a positive number"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any], message: str) -> None:
    url = options.pop("url", "redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match=message):
        make_store(url, **options)


def test_a_bad_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_store("http://user:hunter2@127.0.0.1/")
    assert "hunter2" not in str(caught.value)


def test_versions_live_in_the_hash_and_old_models_start_at_zero(redis_server: Any) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    plain = make_store(redis_server.url, prefix=prefix)
    versioned = make_store(redis_server.url, prefix=prefix, version_attribute="_version")
    try:
        call(plain, "create", {"id": "old", "n": 1})
        created = call(versioned, "create", {"id": "new", "_version": 5})
        assert created == {"id": "new", "_version": 1}
        assert versioned.client.hget(f'{prefix}:model:"new"', "_version") == b"1"
        with pytest.raises(Conflict) as info:
            call(versioned, "patch", {"id": "old", "n": 2, "_version": 1})
        assert info.value.details["current"] == {"id": "old", "n": 1}
        assert call(versioned, "patch", {"id": "old", "n": 2, "_version": 0})["_version"] == 1
        assert call(versioned, "update", {"id": "old", "n": 3})["_version"] == 2
        assert call(versioned, "read", {"id": "old"}) == {"id": "old", "n": 3, "_version": 2}
    finally:
        plain.clear()
        plain.client.close()
        versioned.client.close()
