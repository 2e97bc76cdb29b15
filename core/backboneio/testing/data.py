"""The fixed data set the conformance suite queries, and what each query must answer.

Kept apart from the test classes so benchmarks and a store's own tests can
reuse it. Ids are strings chosen so that their code-point order is their
numeric order (the id is the implicit last sort key).
"""

from __future__ import annotations

from typing import Any

PEOPLE: list[dict[str, Any]] = [
    {
        "id": "p1",
        "name": "Ada",
        "age": 36,
        "active": True,
        "score": 9.5,
        "tags": ["math", "poetry"],
        "address": {"city": "London", "zip": "N1"},
        "nick": "ada",
    },
    {
        "id": "p2",
        "name": "Bob",
        "age": 25,
        "active": False,
        "score": 7.25,
        "tags": ["art"],
        "address": {"city": "Paris", "zip": "75001"},
        "nick": None,
    },
    {
        "id": "p3",
        "name": "Cleo",
        "age": 25,
        "active": True,
        "score": 8.0,
        "tags": [],
        "address": {"city": "London", "zip": "E2"},
    },
    {
        "id": "p4",
        "name": "Dan",
        "age": 41,
        "active": True,
        "score": -1.5,
        "tags": ["math"],
        "address": {"city": "Berlin", "zip": "10115"},
        "nick": "dd",
    },
    {
        "id": "p5",
        "name": "Émile",
        "age": 30,
        "active": False,
        "score": 0,
        "tags": ["poetry", "art"],
        "address": {"city": "Paris", "zip": "75002"},
        "nick": "emi",
    },
    {
        "id": "p6",
        "name": "Zoë",
        "age": 19,
        "active": True,
        "score": 10,
        "tags": ["math", "art"],
        "address": None,
        "nick": "z",
    },
    {
        "id": "p7",
        "name": "אורי",
        "age": 52,
        "active": False,
        "score": 3.5,
        "tags": ["🎨"],
        "nick": "🦄",
    },
    {
        "id": "p8",
        "name": "bob",
        "age": 25,
        "active": True,
        "score": 7.25,
        "tags": ["art"],
        "address": {"city": "Paris", "zip": "75001"},
    },
]
ALL = {p["id"] for p in PEOPLE}

# (query, the ids of the models it matches, in any order)
FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, ALL),
    # equality, exact and typed
    ({"name": "Ada"}, {"p1"}),
    ({"id": "p4"}, {"p4"}),
    ({"age": 25}, {"p2", "p3", "p8"}),
    ({"age": 25.0}, {"p2", "p3", "p8"}),
    ({"active": True}, {"p1", "p3", "p4", "p6", "p8"}),
    ({"score": 0}, {"p5"}),
    ({"score": False}, set()),
    ({"active": 1}, set()),
    ({"nick": None}, {"p2"}),
    ({"name": "אורי"}, {"p7"}),
    ({"nick": "🦄"}, {"p7"}),
    ({"name": "bob"}, {"p8"}),
    ({"tags": ["math", "poetry"]}, {"p1"}),
    ({"tags": ["poetry", "math"]}, set()),
    ({"tags": "math"}, set()),
    ({"tags": []}, {"p3"}),
    ({"address": {"city": "Paris", "zip": "75001"}}, {"p2", "p8"}),
    ({"address": {"zip": "75001", "city": "Paris"}}, {"p2", "p8"}),
    ({"address": {"city": "Paris"}}, set()),
    ({"address": None}, {"p6"}),
    ({"age": 25, "active": True}, {"p3", "p8"}),
    ({"nosuchfield": 1}, set()),
    ({"nosuchfield": None}, set()),
    # $eq / $ne
    ({"age": {"$eq": 36}}, {"p1"}),
    ({"age": {"$ne": 25}}, {"p1", "p4", "p5", "p6", "p7"}),
    ({"nick": {"$ne": None}}, {"p1", "p4", "p5", "p6", "p7"}),
    ({"nosuchfield": {"$ne": 1}}, set()),
    ({"address": {"$ne": {"city": "Paris", "zip": "75001"}}}, {"p1", "p3", "p4", "p5", "p6"}),
    # $in / $nin
    ({"name": {"$in": ["Ada", "Dan", "Nobody"]}}, {"p1", "p4"}),
    ({"age": {"$in": []}}, set()),
    ({"age": {"$nin": []}}, ALL),
    ({"age": {"$nin": [25, 30]}}, {"p1", "p4", "p6", "p7"}),
    ({"nick": {"$nin": [None, "ada"]}}, {"p4", "p5", "p6", "p7"}),
    ({"nosuchfield": {"$nin": [1]}}, set()),
    ({"tags": {"$in": [["art"], []]}}, {"p2", "p3", "p8"}),
    ({"active": {"$in": [1]}}, set()),
    # ordering: numbers with numbers, strings with strings by code point
    ({"age": {"$gt": 30}}, {"p1", "p4", "p7"}),
    ({"age": {"$gte": 30}}, {"p1", "p4", "p5", "p7"}),
    ({"age": {"$lt": 25}}, {"p6"}),
    ({"age": {"$lte": 25}}, {"p2", "p3", "p6", "p8"}),
    ({"age": {"$gt": 20, "$lt": 36}}, {"p2", "p3", "p5", "p8"}),
    ({"score": {"$gt": 7.25}}, {"p1", "p3", "p6"}),
    ({"score": {"$lt": 0}}, {"p4"}),
    ({"score": {"$gte": 7.25, "$lte": 9.5}}, {"p1", "p2", "p3", "p8"}),
    ({"name": {"$gte": "a"}}, {"p5", "p7", "p8"}),
    ({"name": {"$lt": "C"}}, {"p1", "p2"}),
    ({"nick": {"$gt": ""}}, {"p1", "p4", "p5", "p6", "p7"}),
    ({"age": {"$gt": "20"}}, set()),
    ({"active": {"$gt": 0}}, set()),
    ({"address": {"$gt": "A"}}, set()),
    ({"nosuchfield": {"$lt": 100}}, set()),
    # $or, alone, nested and with other conditions
    ({"$or": [{"name": "Ada"}, {"age": {"$lt": 20}}]}, {"p1", "p6"}),
    ({"active": True, "$or": [{"age": 25}, {"score": {"$gte": 9.5}}]}, {"p1", "p3", "p6", "p8"}),
    ({"$or": [{"$or": [{"name": "Dan"}, {"name": "Zoë"}]}, {"nick": None}]}, {"p2", "p4", "p6"}),
    ({"$or": [{"nosuchfield": 1}, {"name": "Bob"}]}, {"p2"}),
    ({"$or": [{"age": 25, "active": False}, {"tags": {"$in": [["🎨"]]}}]}, {"p2", "p7"}),
    ({"age": {"$in": [25, 30]}, "name": {"$ne": "bob"}}, {"p2", "p3", "p5"}),
    ({"$or": [{"age": {"$gt": 40}}], "address": {"$ne": None}}, {"p4"}),
]

# (query, the ids it answers, in this order)
ORDER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"$sort": {"age": 1, "name": 1}}, ["p6", "p2", "p3", "p8", "p5", "p1", "p4", "p7"]),
    ({"$sort": {"age": -1, "name": 1}}, ["p7", "p4", "p1", "p5", "p2", "p3", "p8", "p6"]),
    ({"$sort": {"name": 1}}, ["p1", "p2", "p3", "p4", "p6", "p8", "p5", "p7"]),
    ({"$sort": {"name": -1}}, ["p7", "p5", "p8", "p6", "p4", "p3", "p2", "p1"]),
    ({"$sort": {"score": -1, "name": -1}}, ["p6", "p1", "p3", "p8", "p2", "p7", "p5", "p4"]),
    # ties are broken by the id, ascending, whatever the direction
    ({"$sort": {"age": 1}}, ["p6", "p2", "p3", "p8", "p5", "p1", "p4", "p7"]),
    ({"$sort": {"age": -1}}, ["p7", "p4", "p1", "p5", "p2", "p3", "p8", "p6"]),
    # null and missing sort together, first
    ({"$sort": {"nick": 1}}, ["p2", "p3", "p8", "p1", "p4", "p5", "p6", "p7"]),
    ({"$sort": {"nick": -1}}, ["p7", "p6", "p5", "p4", "p1", "p2", "p3", "p8"]),
    # objects tie with each other, after null/missing
    ({"$sort": {"address": 1, "name": 1}}, ["p6", "p7", "p1", "p2", "p3", "p4", "p8", "p5"]),
    ({"$sort": {"active": 1, "age": -1}}, ["p7", "p5", "p2", "p4", "p1", "p3", "p8", "p6"]),
    # filter, sort and page together
    (
        {"age": {"$gte": 25}, "$sort": {"age": 1, "name": 1}, "$skip": 2, "$limit": 3},
        ["p8", "p5", "p1"],
    ),
    ({"$sort": {"name": 1}, "$skip": 6}, ["p5", "p7"]),
    ({"$sort": {"name": 1}, "$skip": 8}, []),
    ({"$sort": {"name": 1}, "$skip": 100}, []),
    ({"$sort": {"name": 1}, "$limit": 0}, []),
    ({"$sort": {"name": 1}, "$limit": 2}, ["p1", "p2"]),
    ({"$sort": {"name": 1}, "$limit": 100}, ["p1", "p2", "p3", "p4", "p6", "p8", "p5", "p7"]),
    ({"$or": [{"active": False}, {"age": 19}], "$sort": {"score": 1}}, ["p5", "p7", "p2", "p6"]),
]

# One field holding every JSON type, for the order of mixed types.
MIXED: list[dict[str, Any]] = [
    {"id": "m01"},
    {"id": "m02", "v": None},
    {"id": "m03", "v": True},
    {"id": "m04", "v": False},
    {"id": "m05", "v": 3},
    {"id": "m06", "v": -2.5},
    {"id": "m07", "v": "10"},
    {"id": "m08", "v": "a"},
    {"id": "m09", "v": [1]},
    {"id": "m10", "v": {"a": 1}},
]
MIXED_ASCENDING = ["m01", "m02", "m04", "m03", "m06", "m05", "m07", "m08", "m09", "m10"]
MIXED_DESCENDING = ["m10", "m09", "m08", "m07", "m05", "m06", "m03", "m04", "m01", "m02"]

# Queries every store must refuse with BadRequest.
BAD_QUERIES: list[Any] = [
    [1, 2],
    "name=Ada",
    {"$where": "1"},
    {"age": {"$regex": "^2"}},
    {"age": {"$gt": 3, "name": "x"}},
    {"$limit": -1},
    {"$limit": "10"},
    {"$limit": 1.5},
    {"$limit": True},
    {"$skip": -3},
    {"$skip": "2"},
    {"age": {"$in": 25}},
    {"age": {"$nin": "25"}},
    {"age": {"$gt": None}},
    {"age": {"$lt": [1]}},
    {"age": {"$gte": True}},
    {"$or": []},
    {"$or": {"name": "Ada"}},
    {"$or": ["name"]},
    {"$or": [{"$limit": 1}]},
    {"$sort": {"age": 2}},
    {"$sort": {"age": "asc"}},
    {"$sort": ["age"]},
    {"$select": "name"},
    {"$select": ["name", 3]},
]

# Values that must come back exactly as they were stored.
ODD_VALUES: dict[str, Any] = {
    "unicode": "héllo wörld — 日本語 ✓",
    "emoji": "😀👍🏽👨‍👩‍👧",
    "rtl": "مرحبا بالعالم שלום",
    "quotes": 'it\'s "quoted" \\ back\\slash\n\ttabbed',
    "empty_string": "",
    "big_int": 2**53 - 1,
    "negative_big_int": -(2**53 - 1),
    "zero": 0,
    "float": 3.141592653589793,
    "small_float": 1e-7,
    "negative_float": -2.5,
    "true": True,
    "false": False,
    "null": None,
    "empty_list": [],
    "empty_dict": {},
    "list": [1, "two", 3.5, None, True, [4, [5]], {"six": 6}],
    "nested": {"a": {"b": {"c": [1, {"d": None, "e": "é"}]}}, "f": False},
}

# Model keys an application may use; a store that cannot hold one lists it in
# ``unstorable_keys`` and must then refuse it with BadRequest.
ODD_KEYS: list[str] = ["with space", "dotted.key", "ünïcødé", "emoji😀", "UPPER", "123"]
