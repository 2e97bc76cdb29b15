"""The query parser and its reference evaluator (docs/query.md)."""

from __future__ import annotations

from typing import Any

import pytest
from backboneio.errors import BadRequest
from backboneio.query import (
    And,
    Compare,
    Or,
    Query,
    SortKey,
    json_equal,
    sort_key,
    type_rank,
)
from backboneio.testing import data


def refused(query: Any, **kwargs: Any) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        Query.parse(query, **kwargs)
    return info.value


# -- the parsed structure -------------------------------------------------------


def test_an_empty_query_matches_everything() -> None:
    for empty in (None, {}):
        query = Query.parse(empty)
        assert query == Query()
        assert query.where == And(())
        assert query.apply([{"id": 1}, {"id": 2}]) == [{"id": 1}, {"id": 2}]


def test_fields_become_eq_comparisons() -> None:
    query = Query.parse({"name": "Ada", "address": {"city": "Paris"}, "tags": ["a"]})
    assert query.where == And(
        (
            Compare("name", "eq", "Ada"),
            Compare("address", "eq", {"city": "Paris"}),
            Compare("tags", "eq", ["a"]),
        )
    )


def test_field_operators_parse_to_their_names() -> None:
    query = Query.parse(
        {
            "a": {"$eq": 1, "$ne": 2, "$lt": 3, "$lte": 4, "$gt": 5, "$gte": 6},
            "b": {"$in": [1, "x"], "$nin": []},
        }
    )
    assert query.where.conditions == (
        Compare("a", "eq", 1),
        Compare("a", "ne", 2),
        Compare("a", "lt", 3),
        Compare("a", "lte", 4),
        Compare("a", "gt", 5),
        Compare("a", "gte", 6),
        Compare("b", "in", (1, "x")),
        Compare("b", "nin", ()),
    )


def test_or_is_a_node_of_and_branches() -> None:
    query = Query.parse({"active": True, "$or": [{"age": {"$gt": 40}}, {"$or": [{"name": "Ada"}]}]})
    assert query.where == And(
        (
            Compare("active", "eq", True),
            Or(
                (
                    And((Compare("age", "gt", 40),)),
                    And((Or((And((Compare("name", "eq", "Ada"),)),)),)),
                )
            ),
        )
    )
    assert query.fields == {"active", "age", "name"}


def test_paging_sort_and_select_are_parsed() -> None:
    query = Query.parse(
        {"$limit": 5, "$skip": 10, "$sort": {"age": -1, "name": 1}, "$select": ["name"]},
        id_attribute="_id",
    )
    assert query.limit == 5 and query.skip == 10
    assert query.sort == (SortKey("age", descending=True), SortKey("name"))
    assert query.select == ("name",)
    assert query.id_attribute == "_id"


def test_null_paging_keys_mean_not_given() -> None:
    query = Query.parse({"$limit": None, "$skip": None, "$sort": None, "$select": None})
    assert (query.limit, query.skip, query.sort, query.select) == (None, 0, (), None)


def test_parsed_queries_are_immutable() -> None:
    query = Query.parse({"a": 1})
    with pytest.raises(AttributeError):
        query.limit = 3  # type: ignore[misc]


# -- max_limit ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "max_limit", "expected"),
    [(None, None, None), (None, 10, 10), (5, 10, 5), (50, 10, 10), (0, 10, 0), (7, None, 7)],
)
def test_max_limit_caps_the_limit(limit: int | None, max_limit: int | None, expected: Any) -> None:
    query = {} if limit is None else {"$limit": limit}
    assert Query.parse(query, max_limit=max_limit).limit == expected


# -- every error path -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message", "details"),
    [
        ([1, 2], "A query must be an object, got an array", {"query_error": "type"}),
        ("name=Ada", "A query must be an object, got a string", {"query_error": "type"}),
        (3, "A query must be an object, got a number", {"query_error": "type"}),
        ({1, 2}, "A query must be an object, got set", {"query_error": "type"}),
        (
            {"$where": "1"},
            "Unknown query operator $where; expected one of $or, $limit, $skip, $sort, $select",
            {"operator": "$where", "query_error": "operator"},
        ),
        (
            {"age": {"$regex": "^2"}},
            "Unknown query operator $regex on field 'age'; expected one of $eq, $ne, $lt,",
            {"operator": "$regex", "field": "age", "query_error": "operator"},
        ),
        (
            {"age": {"$gt": 3, "name": "x"}},
            "Query field 'age' mixes operators with plain keys ('name')",
            {"field": "age", "query_error": "field"},
        ),
        (
            {"$or": [{"$limit": 1}]},
            "$limit is only allowed at the top of a query, not inside $or",
            {"operator": "$limit", "query_error": "operator"},
        ),
        (
            {"$or": [{"$sort": {"a": 1}}]},
            "$sort is only allowed at the top of a query",
            {"operator": "$sort"},
        ),
        ({"$or": []}, "$or needs a non-empty array of queries", {"operator": "$or"}),
        ({"$or": {"a": 1}}, "$or needs a non-empty array of queries", {"operator": "$or"}),
        (
            {"$or": [{"a": 1}, "b"]},
            "$or needs an array of query objects, got a string in it",
            {"operator": "$or", "query_error": "operator"},
        ),
        (
            {"age": {"$in": 25}},
            "$in on field 'age' needs an array, got a number",
            {"operator": "$in", "field": "age", "query_error": "operand"},
        ),
        ({"age": {"$nin": "25"}}, "$nin on field 'age' needs an array, got a string", {}),
        ({"age": {"$in": {"a": 1}}}, "$in on field 'age' needs an array, got an object", {}),
        (
            {"age": {"$gt": None}},
            "$gt on field 'age' needs a number or a string, got null",
            {"operator": "$gt", "field": "age", "query_error": "operand"},
        ),
        ({"age": {"$lt": [1]}}, "$lt on field 'age' needs a number or a string, got an array", {}),
        (
            {"age": {"$gte": True}},
            "$gte on field 'age' needs a number or a string, got a boolean",
            {},
        ),
        (
            {"age": {"$lte": {}}},
            "$lte on field 'age' needs a number or a string, got an object",
            {},
        ),
        (
            {"$limit": -1},
            "$limit must be a non-negative integer, got -1",
            {"operator": "$limit", "query_error": "operand"},
        ),
        ({"$limit": "10"}, "$limit must be a non-negative integer, got '10'", {}),
        ({"$limit": 1.5}, "$limit must be a non-negative integer, got 1.5", {}),
        ({"$limit": True}, "$limit must be a non-negative integer, got True", {}),
        ({"$skip": -3}, "$skip must be a non-negative integer, got -3", {"operator": "$skip"}),
        (
            {"$sort": ["age"]},
            '$sort must be an object like {"age": -1, "name": 1}, got an array',
            {"operator": "$sort", "query_error": "operand"},
        ),
        (
            {"$sort": {"age": 2}},
            "$sort direction of 'age' must be 1 or -1, got 2",
            {"operator": "$sort", "field": "age"},
        ),
        ({"$sort": {"age": "asc"}}, "$sort direction of 'age' must be 1 or -1, got 'asc'", {}),
        ({"$sort": {"age": True}}, "$sort direction of 'age' must be 1 or -1, got True", {}),
        (
            {"$select": "name"},
            "$select must be an array of field names, got 'name'",
            {"operator": "$select", "query_error": "operand"},
        ),
        ({"$select": ["name", 3]}, "$select must be an array of field names", {}),
        (
            {"score": float("nan")},
            "Query field 'score': numbers must be finite",
            {"query_error": "value"},
        ),
        ({"score": {"$gt": float("inf")}}, "$gt on field 'score': numbers must be finite", {}),
        ({"tags": {1, 2}}, "Query field 'tags': set is not a JSON value", {"query_error": "value"}),
        ({"meta": {1: "x"}}, "Query field 'meta': object keys must be strings", {}),
        ({"age": {"$in": [object()]}}, "$in on field 'age': object is not a JSON value", {}),
        ({1: "x"}, "Query field names must be strings", {"query_error": "field"}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_queries_are_refused_with_a_clear_message(
    query: Any, message: str, details: dict[str, Any]
) -> None:
    error = refused(query)
    assert error.message.startswith(message), error.message
    assert error.status == 400
    for key, value in details.items():
        assert error.details[key] == value, (key, error.details)


def test_deeply_nested_values_are_refused() -> None:
    value: Any = "leaf"
    for _ in range(40):
        value = [value]
    error = refused({"deep": value})
    assert error.message == "Query field 'deep': value nested too deeply"
    assert error.details["query_error"] == "depth"


def test_deeply_nested_or_is_refused() -> None:
    query: dict[str, Any] = {"a": 1}
    for _ in range(40):
        query = {"$or": [query]}
    error = refused(query)
    assert error.message == "Query nested too deeply"
    assert error.details["query_error"] == "depth"


def test_error_details_reach_the_wire_form() -> None:
    public = refused({"age": {"$regex": "x"}}).to_public()
    assert public["name"] == "BadRequest" and public["status"] == 400
    assert public["operator"] == "$regex" and public["field"] == "age"


# -- JSON equality and order ------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (2**53 - 1, 2**53 - 1, True),
        (True, 1, False),
        (False, 0, False),
        (True, True, True),
        (None, None, True),
        (None, 0, False),
        (None, "", False),
        ("a", "a", True),
        ("é", "e\u0301", False),
        ("Bob", "bob", False),
        ([1, 2], [1, 2], True),
        ([1, 2], [2, 1], False),
        ([1], [1, 1], False),
        ([True], [1], False),
        ({"a": 1, "b": [2]}, {"b": [2.0], "a": 1}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ({"a": None}, {"b": None}, False),
        ([], {}, False),
        ("1", 1, False),
    ],
)
def test_json_equality(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


def test_type_ranks_follow_the_documented_order() -> None:
    ordered = [None, False, True, -5, 2.5, 10, "", "Z", "a", "é", [2], {"a": 1}]
    assert sorted(reversed(ordered), key=sort_key)[:9] == ordered[:9]
    ranks = [type_rank(v) for v in ordered]
    assert ranks == sorted(ranks)
    # Arrays tie with arrays, objects with objects.
    assert sort_key([1]) == sort_key([0, 0])
    assert sort_key({"a": 1}) == sort_key({})


# -- evaluation -----------------------------------------------------------------


def test_a_condition_on_a_missing_field_is_false_for_every_operator() -> None:
    for op, value in [
        ("eq", None),
        ("ne", 1),
        ("lt", 5),
        ("lte", 5),
        ("gt", 5),
        ("gte", "a"),
        ("in", (None,)),
        ("nin", (1,)),
    ]:
        assert not Compare("x", op, value).matches({"id": 1}), op


def test_ordering_across_types_does_not_match() -> None:
    assert not Compare("v", "gt", 1).matches({"v": "2"})
    assert not Compare("v", "lt", "z").matches({"v": 1})
    assert not Compare("v", "gte", 0).matches({"v": True})
    assert not Compare("v", "lt", 5).matches({"v": None})
    assert not Compare("v", "gt", "").matches({"v": ["a"]})
    assert Compare("v", "gt", 1).matches({"v": 1.5})
    assert Compare("v", "lt", "b").matches({"v": "a"})


@pytest.mark.parametrize(
    ("query", "expected"), data.FILTER_CASES, ids=[repr(q) for q, _ in data.FILTER_CASES]
)
def test_filters_on_the_reference_data(query: Any, expected: set[str]) -> None:
    parsed = Query.parse(query)
    assert {p["id"] for p in data.PEOPLE if parsed.matches(p)} == expected


@pytest.mark.parametrize(
    ("query", "expected"), data.ORDER_CASES, ids=[repr(q) for q, _ in data.ORDER_CASES]
)
def test_order_on_the_reference_data(query: Any, expected: list[str]) -> None:
    # Given in reverse creation order: a sorted answer must not depend on it.
    got = Query.parse(query).apply(list(reversed(data.PEOPLE)))
    assert [m["id"] for m in got] == expected


def test_mixed_types_sort_in_the_documented_order() -> None:
    assert [m["id"] for m in Query.parse({"$sort": {"v": 1}}).apply(data.MIXED)] == (
        data.MIXED_ASCENDING
    )
    assert [m["id"] for m in Query.parse({"$sort": {"v": -1}}).apply(data.MIXED)] == (
        data.MIXED_DESCENDING
    )


def test_without_sort_the_given_order_is_kept() -> None:
    models = [{"id": 3}, {"id": 1}, {"id": 2}]
    assert Query.parse({"$skip": 1}).apply(models) == [{"id": 1}, {"id": 2}]


def test_the_id_breaks_ties_even_with_mixed_id_types() -> None:
    models = [{"id": "b", "v": 1}, {"id": 2, "v": 1}, {"id": "a", "v": 1}, {"id": 1, "v": 0}]
    got = Query.parse({"$sort": {"v": -1}}).apply(models)
    assert [m["id"] for m in got] == [2, "a", "b", 1]


def test_select_keeps_the_custom_id_attribute() -> None:
    query = Query.parse({"$select": ["a"]}, id_attribute="_id")
    assert query.apply([{"_id": "x", "id": "data", "a": 1, "b": 2}, {"_id": "y"}]) == [
        {"_id": "x", "a": 1},
        {"_id": "y"},
    ]


def test_apply_pages_after_sorting() -> None:
    models = [{"id": i, "n": -i} for i in range(10)]
    got = Query.parse({"$sort": {"n": 1}, "$skip": 2, "$limit": 3}).apply(models)
    assert [m["id"] for m in got] == [7, 6, 5]


@pytest.mark.parametrize("query", data.BAD_QUERIES, ids=[repr(q) for q in data.BAD_QUERIES])
def test_the_suites_bad_queries_are_refused_by_the_parser(query: Any) -> None:
    refused(query)
