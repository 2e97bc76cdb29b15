"""The query language (:mod:`backboneio.query`) as SQL.

Each translator turns one :class:`~backboneio.query.Compare` into a SQL
condition with the semantics docs/query.md gives: a missing field never
matches, ``true`` is not ``1``, numbers compare with numbers and strings with
strings (by code point, hence ``COLLATE "C"`` on PostgreSQL), and sorting ranks
null/missing < booleans < numbers < strings < arrays < objects.

A condition a translator cannot express exactly answers None. The store then
falls back (see :class:`Plan`): SQL narrows the rows with what it can express
and :meth:`backboneio.query.Query.apply` finishes the job in Python.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from backboneio.errors import BadRequest
from backboneio.query import And, Compare, Condition, Or, Query, is_number
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from .jsonvalues import canonical_text, plain_dumps

SQLExpr = ColumnElement[Any]
COMPARISONS: dict[str, Callable[[Any, Any], SQLExpr]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Plan:
    """How to answer a query: ``where`` narrows in SQL; when ``exact``, SQL also
    sorts and pages (``order_by``), else Python applies the whole query to the
    rows ``where`` found, taken in the store's own order."""

    where: SQLExpr | None
    order_by: tuple[SQLExpr, ...]
    exact: bool


class Translator:
    """Turns a parsed query into a :class:`Plan`; subclasses know the storage."""

    def compare(self, node: Compare) -> SQLExpr | None:
        raise NotImplementedError

    def sort_keys(self, field: str, descending: bool) -> list[SQLExpr] | None:
        raise NotImplementedError

    def id_sort_keys(self) -> list[SQLExpr]:
        raise NotImplementedError

    def plan(self, query: Query) -> Plan:
        where, exact = self.condition(query.where)
        order: list[SQLExpr] = []
        for key in query.sort:
            keys = self.sort_keys(key.field, key.descending)
            if keys is None:
                exact = False
                break
            order += keys
        if query.sort and exact:
            order += self.id_sort_keys()
        return Plan(where, tuple(order), exact)

    def condition(self, node: Condition) -> tuple[SQLExpr | None, bool]:
        """(SQL that every matching row satisfies, whether it is exactly the condition)."""
        if isinstance(node, Compare):
            expr = self.compare(node)
            return expr, expr is not None
        parts = [self.condition(child) for child in node.conditions]
        exact = all(e for _, e in parts)
        if isinstance(node, And):
            exprs = [expr for expr, _ in parts if expr is not None]
            if not exprs:
                return None, exact
            return (exprs[0] if len(exprs) == 1 else sa.and_(*exprs)), exact
        assert isinstance(node, Or)
        exprs = [expr for expr, _ in parts if expr is not None]
        if len(exprs) < len(parts):
            return None, False  # one branch unknown: any row may match
        return sa.or_(*exprs), exact


def _either(node: Compare, eq: Callable[[Any], SQLExpr], present: SQLExpr) -> SQLExpr:
    """eq/ne/in/nin from one equality builder; ``present`` is "the field exists"."""
    if node.op == "eq":
        return eq(node.value)
    if node.op == "ne":
        return sa.and_(present, sa.not_(eq(node.value)))
    matches = [eq(v) for v in node.value]
    if node.op == "in":
        return sa.or_(*matches) if matches else sa.false()
    return sa.and_(present, sa.not_(sa.or_(*matches))) if matches else present


# -- document tables: the model is a JSON body ---------------------------------


class SQLiteDocuments(Translator):
    """``json_type``/``json_extract`` on a TEXT column of JSON."""

    NUMBER_TYPES = ("integer", "real")

    def __init__(self, body: SQLExpr, id_attribute: str) -> None:
        self.body = body
        self.id_attribute = id_attribute

    @staticmethod
    def path(field: str) -> str | None:
        # SQLite matches a quoted path label against the key as written in the
        # JSON text and knows no escapes, so keys that JSON escapes (quotes,
        # backslashes, control characters) are left to the Python fallback.
        if json.dumps(field, ensure_ascii=False)[1:-1] != field:
            return None
        return f'$."{field}"'

    def parts(self, field: str) -> tuple[SQLExpr, SQLExpr] | None:
        path = self.path(field)
        if path is None:
            return None
        return sa.func.json_type(self.body, path), sa.func.json_extract(self.body, path)

    def compare(self, node: Compare) -> SQLExpr | None:
        parts = self.parts(node.field)
        if parts is None:
            return None
        kind, value = parts

        def eq(wanted: Any) -> SQLExpr:
            if wanted is None:
                return kind == "null"
            if isinstance(wanted, bool):
                return kind == ("true" if wanted else "false")
            if is_number(wanted):
                return sa.and_(kind.in_(self.NUMBER_TYPES), value == wanted)
            if isinstance(wanted, str):
                return sa.and_(kind == "text", value == wanted)
            # Arrays and objects come back as the canonical text the store wrote.
            return sa.and_(
                kind == ("array" if isinstance(wanted, (list, tuple)) else "object"),
                value == canonical_text(wanted),
            )

        if node.op in COMPARISONS:
            types = self.NUMBER_TYPES if is_number(node.value) else ("text",)
            return sa.and_(kind.in_(types), COMPARISONS[node.op](value, node.value))
        return _either(node, eq, kind.is_not(None))

    def sort_keys(self, field: str, descending: bool) -> list[SQLExpr] | None:
        parts = self.parts(field)
        if parts is None:
            return None
        kind, value = parts
        rank = sa.case(
            (kind.in_(("true", "false")), 1),
            (kind.in_(self.NUMBER_TYPES), 2),
            (kind == "text", 3),
            (kind == "array", 4),
            (kind == "object", 5),
            else_=0,
        )
        # json_extract gives 0/1 for false/true, numbers and text as themselves.
        scalar = sa.case(
            (kind.in_(("true", "false", "integer", "real", "text")), value), else_=sa.null()
        )
        return [k.desc() if descending else k.asc() for k in (rank, scalar)]

    def id_sort_keys(self) -> list[SQLExpr]:
        keys = self.sort_keys(self.id_attribute, False)
        assert keys is not None, "id attributes are plain names"
        return keys


class PostgresDocuments(Translator):
    """``jsonb`` operators on a JSONB column."""

    def __init__(self, body: SQLExpr, id_attribute: str) -> None:
        self.body = body
        self.id_attribute = id_attribute

    def value(self, field: str) -> SQLExpr:
        return self.body.op("->", return_type=JSONB)(sa.literal(field, sa.Text))

    def text(self, field: str) -> SQLExpr:
        return self.body.op("->>", return_type=sa.Text)(sa.literal(field, sa.Text))

    @staticmethod
    def jsonb(value: Any) -> SQLExpr:
        return sa.cast(sa.literal(plain_dumps(value), sa.Text), JSONB)

    def compare(self, node: Compare) -> SQLExpr | None:
        if "\x00" in node.field:
            return None  # jsonb cannot hold such a key; Python finds nothing
        value = self.value(node.field)
        kind = sa.func.jsonb_typeof(value)
        if node.op in COMPARISONS:
            compare = COMPARISONS[node.op]
            if is_number(node.value):
                return sa.and_(kind == "number", compare(value, self.jsonb(node.value)))
            text = self.text(node.field).collate("C")
            return sa.and_(kind == "string", compare(text, sa.literal(node.value, sa.Text)))
        # jsonb equality is JSON equality: numbers by value, objects by content.
        return _either(node, lambda wanted: value == self.jsonb(wanted), value.is_not(None))

    def sort_keys(self, field: str, descending: bool) -> list[SQLExpr] | None:
        if "\x00" in field:
            return None
        value = self.value(field)
        kind = sa.func.jsonb_typeof(value)
        rank = sa.case(
            (kind == "boolean", 1),
            (kind == "number", 2),
            (kind == "string", 3),
            (kind == "array", 4),
            (kind == "object", 5),
            else_=0,
        )
        keys = [
            rank,
            sa.case((kind == "boolean", sa.cast(value, sa.Boolean)), else_=sa.null()),
            sa.case((kind == "number", sa.cast(value, sa.Numeric)), else_=sa.null()),
            sa.case((kind == "string", self.text(field)), else_=sa.null()).collate("C"),
        ]
        return [k.desc() if descending else k.asc() for k in keys]

    def id_sort_keys(self) -> list[SQLExpr]:
        keys = self.sort_keys(self.id_attribute, False)
        assert keys is not None
        return keys


# -- tables with a column per attribute ---------------------------------------


def column_kind(column: sa.Column[Any]) -> str:
    """How a column's values behave in queries: boolean, number, string,
    date, datetime, time, uuid; or other (left to the Python fallback)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return "other"
    if python_type is bool:
        return "boolean"
    if python_type in (int, float, Decimal):
        return "number"
    if python_type is str:
        return "string"
    if python_type is datetime.datetime:
        return "datetime"
    if python_type is datetime.date:
        return "date"
    if python_type is datetime.time:
        return "time"
    if python_type is uuid.UUID:
        return "uuid"
    return "other"


def parse_temporal(kind: str, value: Any) -> Any:
    """An ISO string as the column's Python value, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        if kind == "datetime":
            return datetime.datetime.fromisoformat(value)
        if kind == "date":
            return datetime.date.fromisoformat(value)
        if kind == "time":
            return datetime.time.fromisoformat(value)
        return uuid.UUID(value)
    except ValueError:
        return None


def column_operand(kind: str, value: Any) -> Any:
    """``value`` as something the column can be compared with, or None when no
    stored value of this column can equal it (a string against a number...)."""
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "number":
        return value if is_number(value) else None
    if kind == "string":
        return value if isinstance(value, str) else None
    return parse_temporal(kind, value)


class ColumnTable(Translator):
    """Conditions on ordinary columns.

    The table's columns are its schema, so a query naming an attribute that is
    no column is a mistake (a typo, a renamed field) and is refused, unlike in a
    document table where a field no model has simply matches nothing.
    """

    def __init__(
        self, columns: Mapping[str, sa.Column[Any]], id_attribute: str, *, postgresql: bool
    ) -> None:
        self.columns = columns
        self.id_attribute = id_attribute
        self.postgresql = postgresql

    def plan(self, query: Query) -> Plan:
        named = set(query.fields) | {key.field for key in query.sort} | set(query.select or ())
        unknown = sorted(named - set(self.columns) - {self.id_attribute})
        if unknown:
            raise BadRequest(
                f"No column {unknown[0]!r} to query; the columns are "
                + ", ".join(sorted(self.columns)),
                field=unknown[0],
            )
        return super().plan(query)

    def column(self, field: str) -> tuple[SQLExpr, str] | None:
        column = self.columns.get(field)
        if column is None:
            return None
        kind = column_kind(column)
        expr: SQLExpr = column
        if kind == "string" and self.postgresql:
            expr = column.collate("C")
        return expr, kind

    def compare(self, node: Compare) -> SQLExpr | None:
        found = self.column(node.field)
        if found is None:
            return sa.false()  # a field the rows do not have
        expr, kind = found
        if kind == "other":
            return None
        if node.op in COMPARISONS:
            if kind in ("boolean", "uuid"):
                return sa.false()
            operand = column_operand(kind, node.value)
            if operand is None:
                return sa.false()
            return COMPARISONS[node.op](expr, operand)

        def eq(wanted: Any) -> SQLExpr:
            if wanted is None:
                return expr.is_(None)
            operand = column_operand(kind, wanted)
            if operand is None:
                return sa.false()
            # SQL's NULL = x is NULL, not false; NOT of it must stay a clean false.
            return sa.and_(expr.is_not(None), expr == operand)

        return _either(node, eq, sa.true())

    def sort_keys(self, field: str, descending: bool) -> list[SQLExpr] | None:
        found = self.column(field)
        if found is None:
            return []  # missing everywhere: every row ties
        expr, kind = found
        if kind == "other":
            return None
        rank = sa.case((expr.is_(None), 0), else_=1)
        return [k.desc() if descending else k.asc() for k in (rank, expr)]

    def id_sort_keys(self) -> list[SQLExpr]:
        return [self.columns[self.id_attribute].asc()]
