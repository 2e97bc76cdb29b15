"""Existing tables and ORM models, bad input, and queries answered in SQL."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from backboneio import runner
from backboneio.errors import BadRequest, ConfigurationError, Conflict, NotFound
from backboneio.query import Query
from backboneio.testing import StoreClient, data, run_concurrently
from backboneio_sqlalchemy import store
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tables.sqlite3'}"
    return request.getfixturevalue("postgres").url


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def make_task_model(table: str) -> type[Any]:
    class Base(DeclarativeBase):
        pass

    class Task(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(40))
        done: Mapped[bool] = mapped_column(default=False)
        priority: Mapped[int | None]
        due: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime, nullable=True)

    return Task


@pytest.fixture
def tasks(url: str) -> StoreClient:
    """A store on an ORM model's table, created the way an application would."""
    model = make_task_model(unique("tasks"))
    engine = sa.create_engine(url)
    model.metadata.create_all(engine)
    engine.dispose()
    return StoreClient(store(url, model=model))


def rows(url: str, table: str) -> list[Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.exec_driver_sql(f'SELECT * FROM "{table}"').all()
    engine.dispose()
    return found


# -- an ORM model's table ------------------------------------------------------


def test_the_database_numbers_new_rows(tasks: StoreClient) -> None:
    first = tasks.create({"title": "write", "priority": 2})
    second = tasks.create({"title": "test", "done": True})
    assert isinstance(first["id"], int) and second["id"] == first["id"] + 1
    assert tasks.read(first["id"]) == {
        "id": first["id"],
        "title": "write",
        "done": False,
        "priority": 2,
        "due": None,
    }


def test_a_client_may_choose_the_integer_id(tasks: StoreClient) -> None:
    assert tasks.create({"id": 7, "title": "seven"})["id"] == 7
    with pytest.raises(Conflict):
        tasks.create({"id": 7, "title": "again"})
    assert [t["title"] for t in tasks.read()] == ["seven"]


def test_columns_answer_queries_sorts_and_selects(tasks: StoreClient) -> None:
    for n, (title, done, priority) in enumerate(
        [("a", False, 3), ("b", True, None), ("c", True, 1), ("d", False, 2)], start=1
    ):
        tasks.create({"id": n, "title": title, "done": done, "priority": priority})
    assert tasks.ids({"done": True}) == [2, 3]
    assert tasks.ids({"done": 1}) == []
    assert tasks.ids({"priority": None}) == [2]
    assert tasks.ids({"priority": {"$ne": 2}}) == [1, 2, 3]
    assert tasks.ids({"priority": {"$gte": 2}}) == [1, 4]
    assert tasks.ids({"priority": {"$gt": "1"}}) == []
    assert tasks.ids({"title": {"$in": ["a", "d", "zz"]}}) == [1, 4]
    assert tasks.ids({"title": {"$nin": ["a"]}, "done": False}) == [4]
    assert tasks.ids({"$or": [{"title": "a"}, {"priority": 1}]}) == [1, 3]
    assert tasks.ids({"$sort": {"priority": 1}}) == [2, 3, 4, 1]
    assert tasks.ids({"$sort": {"priority": -1}, "$limit": 2, "$skip": 1}) == [4, 3]
    assert tasks.ids({"$sort": {"done": -1, "title": -1}}) == [3, 2, 4, 1]
    assert tasks.query({"$select": ["title"], "id": 3}) == [{"id": 3, "title": "c"}]


@pytest.mark.parametrize(
    "query",
    [
        {"colour": "red"},
        {"colour": {"$ne": "red"}},
        {"$or": [{"colour": None}, {"title": "x"}]},
        {"$sort": {"colour": 1}},
        {"$select": ["title", "colour"]},
    ],
)
def test_a_query_on_an_attribute_that_is_no_column_is_refused(
    tasks: StoreClient, query: dict[str, Any]
) -> None:
    tasks.create({"title": "x"})
    with pytest.raises(BadRequest, match="No column 'colour' to query"):
        tasks.query(query)


def test_dates_travel_as_iso_strings(tasks: StoreClient) -> None:
    created = tasks.create({"title": "ship", "due": "2026-12-24T18:00:00"})
    assert created["due"] == "2026-12-24T18:00:00"
    assert tasks.read(created["id"])["due"] == "2026-12-24T18:00:00"
    tasks.create({"title": "later", "due": "2027-01-02T00:00:00"})
    assert [t["title"] for t in tasks.query({"due": {"$lt": "2027-01-01T00:00:00"}})] == ["ship"]
    assert [t["title"] for t in tasks.query({"due": "2026-12-24T18:00:00"})] == ["ship"]
    assert tasks.query({"due": "next tuesday"}) == []
    with pytest.raises(BadRequest, match="ISO 8601"):
        tasks.create({"title": "when?", "due": "next tuesday"})


def test_patch_and_update_write_columns(tasks: StoreClient) -> None:
    created = tasks.create({"title": "draft", "priority": 5})
    patched = tasks.patch({"id": created["id"], "done": True})
    assert patched == {**created, "done": True}
    # update replaces the model: a nullable column it leaves out becomes null
    updated = tasks.update({"id": created["id"], "title": "final", "done": False})
    assert updated == {
        "id": created["id"],
        "title": "final",
        "done": False,
        "priority": None,
        "due": None,
    }
    assert tasks.read(created["id"]) == updated
    assert tasks.delete(created["id"]) == updated
    with pytest.raises(NotFound):
        tasks.read(created["id"])


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"title": "x", "colour": "red", "size": 3}, "Unknown attributes 'colour', 'size'"),
        ({"title": 12}, "title must be a string"),
        ({"title": "x" * 41}, "longer than 40"),
        ({"title": "x", "done": "yes"}, "done must be true or false"),
        ({"title": "x", "priority": 1.5}, "priority must be an integer"),
        ({"title": "x", "priority": True}, "priority must be an integer"),
        ({"title": None}, "title cannot be null"),
        ({"id": "seven", "title": "x"}, "id must be an integer"),
        ({"id": 2.5, "title": "x"}, "id must be a string or an integer"),
    ],
)
def test_values_the_columns_cannot_hold_are_refused(
    tasks: StoreClient, model: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        tasks.create(model)
    assert tasks.read() == []


@pytest.mark.parametrize("method", ["read", "update", "patch", "delete"])
def test_an_id_of_the_wrong_type_is_refused(tasks: StoreClient, method: str) -> None:
    created = tasks.create({"title": "keep"})
    with pytest.raises(BadRequest, match="id must be an integer"):
        tasks.sync(method, {"id": "not-a-number", "title": "changed"})
    assert tasks.read() == [created]


def test_a_patch_with_an_unknown_attribute_writes_nothing(tasks: StoreClient) -> None:
    created = tasks.create({"title": "keep"})
    with pytest.raises(BadRequest, match="colour"):
        tasks.patch({"id": created["id"], "title": "changed", "colour": "red"})
    assert tasks.read(created["id"]) == created


def test_reflect_uses_an_existing_tables_columns(url: str) -> None:
    table = unique("legacy")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE TABLE "{table}" (code VARCHAR(32) PRIMARY KEY, label TEXT NOT NULL, '
            "qty INTEGER, price NUMERIC(8, 2))"
        )
        conn.exec_driver_sql(f"INSERT INTO \"{table}\" VALUES ('A1', 'apple', 3, 0.5)")
    engine.dispose()
    client = StoreClient(store(url, table, reflect=True, id_attribute="code"), id_attribute="code")
    assert client.read("A1") == {"code": "A1", "label": "apple", "qty": 3, "price": 0.5}
    created = client.create({"label": "pear", "qty": 1, "price": 2})
    assert isinstance(created["code"], str)  # a string key gets a generated id
    assert client.ids({"price": {"$gt": 1}}) == [created["code"]]
    with pytest.raises(BadRequest, match="Unknown attribute 'colour'"):
        client.create({"code": "B2", "label": "kiwi", "colour": "green"})
    assert sorted(r[0] for r in rows(url, table)) == sorted(["A1", created["code"]])


def test_reflect_of_a_missing_table_is_a_configuration_error(url: str) -> None:
    client = StoreClient(store(url, unique("nothing_here"), reflect=True))
    with pytest.raises(ConfigurationError, match="does not exist"):
        client.read()


def test_a_document_table_name_taken_by_another_table_is_refused(url: str) -> None:
    table = unique("taken")
    run = sa.create_engine(url)
    with run.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{table}" (name TEXT)')
    run.dispose()
    client = StoreClient(store(url, table))
    with pytest.raises(ConfigurationError, match="'reflect': True"):
        client.read()


# -- document tables: bad input ---------------------------------------------------


@pytest.fixture
def documents(url: str) -> StoreClient:
    return StoreClient(store(url, unique("docs")))


def test_non_finite_numbers_are_refused(documents: StoreClient) -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(BadRequest, match="JSON cannot hold"):
            documents.create({"id": "x", "v": {"deep": [bad]}})
    assert documents.read() == []


def test_postgres_refuses_nul_characters_before_writing(url: str, documents: StoreClient) -> None:
    documents.create({"id": "ok", "v": 1})
    for model in ({"id": "a", "k\x00ey": 1}, {"id": "a", "v": "nul\x00inside"}):
        if url.startswith("sqlite"):
            assert documents.create(dict(model)) == model  # SQLite's JSON text holds it
            documents.delete("a")
            continue
        with pytest.raises(BadRequest, match="NUL"):
            documents.create(model)
        with pytest.raises(BadRequest, match="NUL"):
            documents.patch({**model, "id": "ok"})
    assert documents.read() == [{"id": "ok", "v": 1}]


def test_keys_sqlite_paths_cannot_name_still_answer_queries(documents: StoreClient) -> None:
    odd = ['say "hi"', "back\\slash", "tab\there"]
    for n, key in enumerate(odd):
        documents.create({"id": n, key: "yes", "n": n})
    for n, key in enumerate(odd):
        assert documents.ids({key: "yes"}) == [n]
        assert documents.ids({key: {"$ne": "yes"}}) == []
    assert documents.ids({"$sort": {odd[0]: -1, "n": -1}}) == [0, 2, 1]


def test_integer_and_string_ids_stay_distinct(documents: StoreClient) -> None:
    documents.create({"id": 1, "kind": "int"})
    documents.create({"id": "1", "kind": "str"})
    assert documents.read(1)["kind"] == "int"
    assert documents.read("1")["kind"] == "str"
    assert documents.ids({"$sort": {"kind": 1}}) == [1, "1"]
    assert documents.ids({"id": 1}) == [1]


# -- queries are SQL, not Python ---------------------------------------------------


@pytest.mark.parametrize("postgresql", [False, True], ids=["sqlite", "postgres"])
def test_every_query_of_the_conformance_data_is_translated_exactly(postgresql: bool) -> None:
    from backboneio_sqlalchemy import DocumentTable

    table = DocumentTable("t", "id", postgresql=postgresql, schema=None)
    queries = [q for q, _ in data.FILTER_CASES + data.ORDER_CASES]
    queries += [{"$sort": {"v": 1}}, *({f: v} for f, v in data.ODD_VALUES.items())]
    queries += [{key: "value"} for key in data.ODD_KEYS]
    for query in queries:
        plan = table.translator.plan(Query.parse(copy.deepcopy(query)))
        assert plan.exact, f"{query!r} would be filtered in Python"


def test_the_fallback_is_only_for_what_sql_cannot_say() -> None:
    from backboneio_sqlalchemy import DocumentTable

    table = DocumentTable("t", "id", postgresql=False, schema=None)
    plan = table.translator.plan(Query.parse({"n": {"$gt": 1}, 'say "hi"': "yes"}))
    assert not plan.exact and plan.where is not None  # n > 1 still narrows in SQL


# -- the benchmark the lead's bench/ calls ------------------------------------------


def test_the_benchmark_answers_the_same_on_every_store(url: str) -> None:
    from backboneio_sqlalchemy.bench import run

    results = run({"sql": url}, rows=300, reads=2)
    assert [r.store for r in results] == ["memory", "sql"]
    assert results[0].matched == results[1].matched == 50
    assert all(r.creates_per_second > 0 and r.filtered_reads_per_second > 0 for r in results)


def test_an_in_memory_sqlite_database_is_one_database_for_every_request() -> None:
    client = StoreClient(store("sqlite://", "notes"))
    client.load(data.PEOPLE)
    assert client.ids({"age": 25, "$sort": {"name": 1}}) == ["p2", "p3", "p8"]
    assert client.patch({"id": "p1", "age": 37})["age"] == 37
    assert len(client.read()) == len(data.PEOPLE)


# -- versions in tables (docs/conflicts.md) -----------------------------------------


def make_versioned_table(url: str, version_type: str = "INTEGER") -> str:
    table = unique("versioned")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE TABLE "{table}" (code VARCHAR(32) PRIMARY KEY, label TEXT, rev {version_type})'
        )
    engine.dispose()
    return table


def test_a_column_table_keeps_the_version_in_its_column(url: str) -> None:
    table = make_versioned_table(url)
    client = StoreClient(
        store(url, table, reflect=True, id_attribute="code", version_attribute="rev"),
        id_attribute="code",
    )
    assert client.create({"code": "a", "label": "one", "rev": 9}) == {
        "code": "a",
        "label": "one",
        "rev": 1,
    }
    assert client.update({"code": "a", "label": "two", "rev": 1})["rev"] == 2
    assert client.patch({"code": "a", "label": "three"})["rev"] == 3
    for method in ("update", "patch", "delete"):
        with pytest.raises(Conflict) as info:
            client.sync(method, {"code": "a", "label": "stale", "rev": 2})
        assert info.value.details["current"] == {"code": "a", "label": "three", "rev": 3}
    assert rows(url, table) == [("a", "three", 3)]
    # update replaces the model, but the version column is the store's.
    assert client.update({"code": "a"}) == {"code": "a", "label": None, "rev": 4}
    with pytest.raises(NotFound):
        client.update({"code": "zz", "label": "x", "rev": 1})
    assert client.sync("delete", {"code": "a", "rev": 4})["rev"] == 4
    assert rows(url, table) == []


def test_rows_from_before_versions_count_as_version_zero(url: str) -> None:
    table = make_versioned_table(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO \"{table}\" VALUES ('old', 'x', NULL), ('old2', 'y', NULL)"
        )
    engine.dispose()
    client = StoreClient(
        store(url, table, reflect=True, id_attribute="code", version_attribute="rev"),
        id_attribute="code",
    )
    with pytest.raises(Conflict):
        client.patch({"code": "old", "rev": 1})
    assert client.patch({"code": "old", "label": "z", "rev": 0})["rev"] == 1
    assert client.update({"code": "old2", "label": "w"})["rev"] == 1


def test_a_document_table_versioned_later_starts_its_old_models_at_zero(url: str) -> None:
    table = unique("docs")
    plain = StoreClient(store(url, table))
    plain.create({"id": "old", "n": 1})
    plain.create({"id": "old2", "n": 1})
    versioned = StoreClient(store(url, table, version_attribute="_version"))
    assert versioned.read("old") == {"id": "old", "n": 1}
    with pytest.raises(Conflict) as info:
        versioned.update({"id": "old", "n": 2, "_version": 1})
    assert info.value.details["current"] == {"id": "old", "n": 1}
    assert versioned.update({"id": "old", "n": 2, "_version": 0})["_version"] == 1
    assert versioned.patch({"id": "old2", "n": 2})["_version"] == 1
    assert versioned.update({"id": "old2", "n": 3})["_version"] == 2


def test_a_column_table_without_a_usable_version_column_is_refused(url: str) -> None:
    model = make_task_model(unique("tasks"))
    with pytest.raises(ConfigurationError, match="no column for the version attribute '_version'"):
        store(url, model=model, version_attribute="_version")
    with pytest.raises(ConfigurationError, match="must be an integer column"):
        store(url, model=model, version_attribute="title")
    # A reflected table is only known at the first request.
    client = StoreClient(
        store(
            url,
            make_versioned_table(url, "TEXT"),
            reflect=True,
            id_attribute="code",
            version_attribute="rev",
        ),
        id_attribute="code",
    )
    with pytest.raises(ConfigurationError, match="must be an integer column"):
        client.read()
    with pytest.raises(ConfigurationError, match="version_attribute and id_attribute"):
        store(url, unique("docs"), version_attribute="id")


def test_concurrent_column_writers_from_one_version_one_wins(url: str) -> None:
    table = make_versioned_table(url)
    client = StoreClient(
        store(url, table, reflect=True, id_attribute="code", version_attribute="rev"),
        id_attribute="code",
    )
    client.create({"code": "race", "label": "start"})

    def write(i: int) -> str:
        runner.sleep(0)
        method = "update" if i % 2 else "patch"
        try:
            client.sync(method, {"code": "race", "label": f"by {i}", "rev": 1})
        except Conflict as exc:
            assert exc.details["current"]["rev"] == 2
            return "conflict"
        return "won"

    outcomes = run_concurrently([lambda i=i: write(i) for i in range(12)])
    assert outcomes.count("won") == 1 and outcomes.count("conflict") == 11
    assert [r[2] for r in rows(url, table)] == [2]
