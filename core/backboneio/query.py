"""The query language of ``read`` without an id (``collection.fetch({data: ...})``).

:meth:`Query.parse` checks a query and turns it into a small neutral
structure: a tree of :class:`Compare`, :class:`And` and :class:`Or` nodes plus
the sort keys, paging and projection. The memory store evaluates that tree in
Python (:meth:`Query.apply`); a SQL or Redis store translates it instead.
docs/query.md is the specification; every store must answer the same models
in the same order for the same query (``backboneio.testing`` checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import BadRequest

#: Field operators as written in a query, to the ``Compare.op`` they parse to.
FIELD_OPERATORS: dict[str, str] = {
    "$eq": "eq",
    "$ne": "ne",
    "$lt": "lt",
    "$lte": "lte",
    "$gt": "gt",
    "$gte": "gte",
    "$in": "in",
    "$nin": "nin",
}
#: Operators allowed at the top of a query (``$or`` also inside ``$or``).
QUERY_OPERATORS: tuple[str, ...] = ("$or", "$limit", "$skip", "$sort", "$select")
ORDERING_OPS: frozenset[str] = frozenset({"lt", "lte", "gt", "gte"})


# -- JSON values: equality and order shared by every store ------------------


def is_number(value: Any) -> bool:
    """JSON numbers; ``true``/``false`` are not numbers here, unlike in Python."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values: numbers by value, booleans distinct from
    numbers, objects regardless of key order, arrays element by element."""
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


#: Sort ranks of JSON types: null (and a missing field) first, objects last.
RANK_NULL, RANK_BOOLEAN, RANK_NUMBER, RANK_STRING, RANK_ARRAY, RANK_OBJECT = range(6)


def type_rank(value: Any) -> int:
    if value is None:
        return RANK_NULL
    if isinstance(value, bool):
        return RANK_BOOLEAN
    if is_number(value):
        return RANK_NUMBER
    if isinstance(value, str):
        return RANK_STRING
    if isinstance(value, (list, tuple)):
        return RANK_ARRAY
    return RANK_OBJECT


def sort_key(value: Any) -> tuple[int, Any]:
    """Where a value goes in ascending order: by type rank, then by value.

    Booleans order false before true, numbers by value, strings by Unicode
    code point; arrays and objects tie with each other (the next sort key,
    then the id, decides).
    """
    rank = type_rank(value)
    if rank in (RANK_BOOLEAN, RANK_NUMBER, RANK_STRING):
        return rank, value
    return rank, 0


def _field_sort_key(field: str) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    return lambda model: sort_key(model.get(field))


MISSING: Any = object()


# -- the condition tree -------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    """``field op value``; false when the model has no ``field``, whatever ``op`` is.

    ``op`` is one of ``eq ne lt lte gt gte in nin``; for ``in``/``nin``
    ``value`` is a tuple of JSON values, for the ordering operators a number
    or a string, for ``eq``/``ne`` any JSON value (compared exactly).
    """

    field: str
    op: str
    value: Any

    def matches(self, model: Mapping[str, Any]) -> bool:
        actual = model.get(self.field, MISSING)
        if actual is MISSING:
            return False
        op, value = self.op, self.value
        if op == "eq":
            return json_equal(actual, value)
        if op == "ne":
            return not json_equal(actual, value)
        if op == "in":
            return any(json_equal(actual, v) for v in value)
        if op == "nin":
            return not any(json_equal(actual, v) for v in value)
        # Ordering only between two numbers or two strings; across types it is
        # false rather than an error, so one odd model cannot break a listing.
        if is_number(value) != is_number(actual) or isinstance(value, str) != isinstance(
            actual, str
        ):
            return False
        if op == "lt":
            return bool(actual < value)
        if op == "lte":
            return bool(actual <= value)
        if op == "gt":
            return bool(actual > value)
        return bool(actual >= value)


@dataclass(frozen=True)
class And:
    """Every condition holds; an empty ``And`` matches every model."""

    conditions: tuple[Condition, ...] = ()

    def matches(self, model: Mapping[str, Any]) -> bool:
        return all(c.matches(model) for c in self.conditions)


@dataclass(frozen=True)
class Or:
    """At least one condition holds (never empty)."""

    conditions: tuple[Condition, ...]

    def matches(self, model: Mapping[str, Any]) -> bool:
        return any(c.matches(model) for c in self.conditions)


Condition = Compare | And | Or


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False


# -- the query ----------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A parsed query. Build it with :meth:`parse`; stores read its fields.

    ``where`` is always an :class:`And` (empty: every model). ``sort`` lists
    the sort keys in priority order; when it is not empty the id attribute is
    the final, implicit tie-breaker. ``limit`` is None for no limit and is
    already capped by the store's ``max_limit``. ``select`` is None for whole
    models, else the fields to return besides the id attribute.
    """

    where: And = field(default_factory=And)
    sort: tuple[SortKey, ...] = ()
    limit: int | None = None
    skip: int = 0
    select: tuple[str, ...] | None = None
    id_attribute: str = "id"

    MAX_DEPTH: ClassVar[int] = 32

    @classmethod
    def parse(cls, data: Any, *, max_limit: int | None = None, id_attribute: str = "id") -> Query:
        """Check ``data`` (``options.data`` of a read) and build a Query.

        Raises :class:`~backboneio.errors.BadRequest` naming the first problem.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise BadRequest(
                f"A query must be an object, got {_json_type(data)}", query_error="type"
            )
        where = _parse_where(data, top=True, depth=0)
        limit = _non_negative_int(data, "$limit")
        if max_limit is not None:
            limit = max_limit if limit is None else min(limit, max_limit)
        skip = _non_negative_int(data, "$skip") or 0
        return cls(
            where=where,
            sort=_parse_sort(data.get("$sort")),
            limit=limit,
            skip=skip,
            select=_parse_select(data.get("$select")),
            id_attribute=id_attribute,
        )

    @property
    def fields(self) -> frozenset[str]:
        """Every field the conditions name (for stores that must map fields to columns)."""
        found: set[str] = set()

        def walk(node: Condition) -> None:
            if isinstance(node, Compare):
                found.add(node.field)
            else:
                for child in node.conditions:
                    walk(child)

        walk(self.where)
        return frozenset(found)

    def matches(self, model: Mapping[str, Any]) -> bool:
        return self.where.matches(model)

    def order(self, models: Iterable[Mapping[str, Any]]) -> list[Any]:
        """``models`` in ``sort`` order (unchanged order when there is no sort)."""
        ordered = list(models)
        if not self.sort:
            return ordered
        # Stable sorts from the least to the most significant key.
        ordered.sort(key=lambda m: sort_key(m.get(self.id_attribute)))
        for key in reversed(self.sort):
            ordered.sort(key=_field_sort_key(key.field), reverse=key.descending)
        return ordered

    def project(self, model: Mapping[str, Any]) -> Any:
        if self.select is None:
            return model
        keep = (self.id_attribute, *self.select)
        return {k: model[k] for k in model if k in keep}

    def apply(self, models: Iterable[Mapping[str, Any]]) -> list[Any]:
        """The answer to the query over ``models`` (given in the store's own order)."""
        found = self.order(m for m in models if self.matches(m))
        end = None if self.limit is None else self.skip + self.limit
        return [self.project(m) for m in found[self.skip : end]]


# -- parsing ------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _check_json(value: Any, where: str, depth: int) -> None:
    """Queries arrive as JSON; this also guards Python callers passing odd values."""
    if depth > Query.MAX_DEPTH:
        raise BadRequest(f"{where}: value nested too deeply", query_error="depth")
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"{where}: numbers must be finite", query_error="value")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, where, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadRequest(f"{where}: object keys must be strings", query_error="value")
            _check_json(item, where, depth + 1)
        return
    raise BadRequest(f"{where}: {type(value).__name__} is not a JSON value", query_error="value")


def _parse_where(data: Mapping[str, Any], *, top: bool, depth: int) -> And:
    if depth > Query.MAX_DEPTH:
        raise BadRequest("Query nested too deeply", query_error="depth")
    conditions: list[Condition] = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise BadRequest("Query field names must be strings", query_error="field")
        if key == "$or":
            conditions.append(_parse_or(value, depth))
        elif key.startswith("$"):
            if key in QUERY_OPERATORS and not top:
                raise BadRequest(
                    f"{key} is only allowed at the top of a query, not inside $or",
                    operator=key,
                    query_error="operator",
                )
            if key not in QUERY_OPERATORS:
                raise BadRequest(
                    f"Unknown query operator {key}; expected one of "
                    f"{', '.join(QUERY_OPERATORS)} at the top of a query",
                    operator=key,
                    query_error="operator",
                )
        else:
            conditions.extend(_parse_field(key, value, depth))
    return And(tuple(conditions))


def _parse_or(value: Any, depth: int) -> Or:
    if not isinstance(value, (list, tuple)) or not value:
        raise BadRequest(
            "$or needs a non-empty array of queries", operator="$or", query_error="operator"
        )
    branches: list[Condition] = []
    for branch in value:
        if not isinstance(branch, Mapping):
            raise BadRequest(
                f"$or needs an array of query objects, got {_json_type(branch)} in it",
                operator="$or",
                query_error="operator",
            )
        branches.append(_parse_where(branch, top=False, depth=depth + 1))
    return Or(tuple(branches))


def _parse_field(name: str, value: Any, depth: int) -> list[Condition]:
    if not isinstance(value, Mapping) or not any(
        isinstance(k, str) and k.startswith("$") for k in value
    ):
        # A plain value, objects and arrays included, is an exact match.
        _check_json(value, f"Query field {name!r}", depth)
        return [Compare(name, "eq", value)]
    plain = [k for k in value if not (isinstance(k, str) and k.startswith("$"))]
    if plain:
        raise BadRequest(
            f"Query field {name!r} mixes operators with plain keys ({plain[0]!r}); to match "
            "an object exactly, leave out the operators",
            field=name,
            query_error="field",
        )
    conditions: list[Condition] = []
    for operator, operand in value.items():
        op = FIELD_OPERATORS.get(operator)
        if op is None:
            raise BadRequest(
                f"Unknown query operator {operator} on field {name!r}; expected one of "
                f"{', '.join(FIELD_OPERATORS)}",
                field=name,
                operator=operator,
                query_error="operator",
            )
        where = f"{operator} on field {name!r}"
        if op in ("in", "nin"):
            if not isinstance(operand, (list, tuple)):
                raise BadRequest(
                    f"{where} needs an array, got {_json_type(operand)}",
                    field=name,
                    operator=operator,
                    query_error="operand",
                )
            _check_json(operand, where, depth)
            operand = tuple(operand)
        elif op in ORDERING_OPS:
            if not (is_number(operand) or isinstance(operand, str)):
                raise BadRequest(
                    f"{where} needs a number or a string, got {_json_type(operand)}",
                    field=name,
                    operator=operator,
                    query_error="operand",
                )
            _check_json(operand, where, depth)
        else:
            _check_json(operand, where, depth)
        conditions.append(Compare(name, op, operand))
    return conditions


def _non_negative_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(
            f"{key} must be a non-negative integer, got {value!r}",
            operator=key,
            query_error="operand",
        )
    return value


def _parse_sort(value: Any) -> tuple[SortKey, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise BadRequest(
            f'$sort must be an object like {{"age": -1, "name": 1}}, got {_json_type(value)}',
            operator="$sort",
            query_error="operand",
        )
    keys = []
    for name, direction in value.items():
        if isinstance(direction, bool) or direction not in (1, -1):
            raise BadRequest(
                f"$sort direction of {name!r} must be 1 or -1, got {direction!r}",
                operator="$sort",
                field=name,
                query_error="operand",
            )
        keys.append(SortKey(name, descending=direction == -1))
    return tuple(keys)


def _parse_select(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise BadRequest(
            f"$select must be an array of field names, got {value!r}",
            operator="$select",
            query_error="operand",
        )
    return tuple(value)
