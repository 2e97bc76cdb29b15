"""The two shapes of table a store keeps models in.

* :class:`DocumentTable` -- created for you: ``seq`` (insertion order),
  ``id`` (the model's id as JSON text, so ``42`` and ``"42"`` stay distinct)
  and ``body`` (the whole model; ``jsonb`` on PostgreSQL, JSON text on SQLite).
* :class:`ColumnTable` -- an existing table or ORM model: each column is a
  model attribute, and a model may hold no other attribute.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from backboneio.errors import BadRequest, ConfigurationError
from backboneio.query import is_number
from backboneio.stores import check_id, new_id
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from . import translate
from .jsonvalues import check_storable

DOCUMENT_COLUMNS = ("seq", "id", "body")


class DocumentTable:
    """Models as JSON documents, one row each."""

    def __init__(self, name: str, id_attribute: str, *, postgresql: bool, schema: str | None):
        self.name = name
        self.id_attribute = id_attribute
        self.postgresql = postgresql
        self.table = sa.Table(
            name,
            sa.MetaData(schema=schema),
            # INTEGER PRIMARY KEY is SQLite's rowid; BIGSERIAL on PostgreSQL.
            sa.Column(
                "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
            ),
            sa.Column("id", sa.Text(), nullable=False, unique=True),
            sa.Column("body", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        )
        body = self.table.c.body
        self.translator: translate.Translator = (
            translate.PostgresDocuments(body, id_attribute)
            if postgresql
            else translate.SQLiteDocuments(body, id_attribute)
        )
        self.default_order = (self.table.c.seq.asc(),)

    def prepare(self, conn: Connection) -> None:
        """Create the table, or check that an existing one has our shape."""
        inspector = sa.inspect(conn)
        if inspector.has_table(self.name, schema=self.table.schema):
            columns = {c["name"] for c in inspector.get_columns(self.name, self.table.schema)}
            if not set(DOCUMENT_COLUMNS) <= columns:
                raise ConfigurationError(
                    f"Table {self.name!r} exists but is not a backboneio document table "
                    f"(columns {', '.join(DOCUMENT_COLUMNS)}); to keep models in its own "
                    f"columns ({', '.join(sorted(columns))}) set 'reflect': True or 'model'"
                )
            return
        self.table.create(conn, checkfirst=True)

    def key(self, model_id: Any) -> str:
        check_id(model_id, self.id_attribute)
        return json.dumps(model_id, ensure_ascii=False)

    # -- versions: the version attribute is a key of the body ----------------

    def check_version_attribute(self, attribute: str) -> None:
        """Refuse a version attribute SQL cannot address inside the body."""
        if self.postgresql:
            usable = "\x00" not in attribute
        else:
            usable = translate.SQLiteDocuments.path(attribute) is not None
        if not usable:
            raise ConfigurationError(
                f"The version attribute {attribute!r} of table {self.name!r} cannot be "
                "compared in SQL; choose a name without quotes, backslashes or control characters"
            )

    def stored_version(self, attribute: str) -> Any:
        """The stored version in SQL; a body without an integer one counts as 0."""
        body = self.table.c.body
        if self.postgresql:
            value = body.op("->", return_type=JSONB)(sa.literal(attribute, sa.Text))
            zero = translate.PostgresDocuments.jsonb(0)
            return sa.case((sa.func.jsonb_typeof(value) == "number", value), else_=zero)
        path = translate.SQLiteDocuments.path(attribute)
        return sa.case(
            (sa.func.json_type(body, path) == "integer", sa.func.json_extract(body, path)),
            else_=0,
        )

    def where_version(self, attribute: str, version: int) -> Any:
        wanted = translate.PostgresDocuments.jsonb(version) if self.postgresql else version
        return self.stored_version(attribute) == wanted

    def where_id(self, model_id: Any) -> Any:
        return self.table.c.id == self.key(model_id)

    def row_for(self, model: dict[str, Any]) -> dict[str, Any]:
        """Column values for a model; assigns an id when it has none."""
        if model.get(self.id_attribute) is None:
            model[self.id_attribute] = new_id()
        key = self.key(model[self.id_attribute])
        check_storable(model, nul_allowed=not self.postgresql)
        return {"id": key, "body": model}

    def values_for_update(self, model: dict[str, Any]) -> dict[str, Any]:
        check_storable(model, nul_allowed=not self.postgresql)
        return {"body": model}

    @property
    def selected(self) -> tuple[Any, ...]:
        return (self.table.c.body,)

    def model_of(self, row: Any) -> dict[str, Any]:
        body = row[0]
        # A driver without a JSON type of its own hands back the text.
        model: dict[str, Any] = json.loads(body) if isinstance(body, str) else body
        return model


class ColumnTable:
    """Models as rows of an existing table: attribute name -> column."""

    def __init__(
        self,
        table: sa.Table,
        columns: Mapping[str, sa.Column[Any]],
        id_attribute: str,
        *,
        postgresql: bool,
    ) -> None:
        self.table = table
        self.name = table.name
        self.columns = dict(columns)
        self.id_attribute = id_attribute
        self.postgresql = postgresql
        id_column = self.columns.get(id_attribute)
        if id_column is None:
            raise ConfigurationError(
                f"Table {table.name!r} has no column for the id attribute {id_attribute!r} "
                f"(columns: {', '.join(self.columns)}); set the backend's 'id_attribute'"
            )
        self.id_column = id_column
        self.id_kind = translate.column_kind(id_column)
        self.kinds = {name: translate.column_kind(c) for name, c in self.columns.items()}
        self.translator = translate.ColumnTable(self.columns, id_attribute, postgresql=postgresql)
        primary = list(table.primary_key.columns) or [id_column]
        self.default_order = tuple(c.asc() for c in primary)
        # The database numbers rows itself when the id is an autoincrementing integer.
        self.database_assigns_ids = (
            self.id_kind == "number"
            and id_column.primary_key
            and id_column is table.autoincrement_column
        )

    @property
    def generated_ids_fit(self) -> bool:
        length = getattr(self.id_column.type, "length", None)
        return length is None or length >= len(new_id())

    def prepare(self, conn: Connection) -> None:
        if not sa.inspect(conn).has_table(self.table.name, schema=self.table.schema):
            raise ConfigurationError(
                f"Table {self.table.name!r} does not exist; create it first (this store "
                "only creates document tables)"
            )

    def id_value(self, model_id: Any) -> Any:
        check_id(model_id, self.id_attribute)
        return self.column_value(self.id_attribute, model_id)

    # -- versions: the version attribute is an integer column ----------------

    def check_version_attribute(self, attribute: str) -> None:
        column = self.columns.get(attribute)
        if column is None:
            raise ConfigurationError(
                f"Table {self.table.name!r} has no column for the version attribute "
                f"{attribute!r} (columns: {', '.join(self.columns)}); add an integer column "
                "or set the backend's 'version_attribute' to one"
            )
        if self.kinds[attribute] != "number" or column.type.python_type is not int:
            raise ConfigurationError(
                f"The version column {column.name!r} of table {self.table.name!r} must be "
                f"an integer column, not {column.type}"
            )

    def stored_version(self, attribute: str) -> Any:
        """The stored version in SQL; NULL (a row from before versions) counts as 0."""
        return sa.func.coalesce(self.columns[attribute], 0)

    def where_version(self, attribute: str, version: int) -> Any:
        return self.stored_version(attribute) == version

    def version_key(self, attribute: str) -> str:
        return self.columns[attribute].key

    def where_id(self, model_id: Any) -> Any:
        return self.id_column == self.id_value(model_id)

    def column_value(self, name: str, value: Any) -> Any:
        """A JSON value as what the column holds; BadRequest when it cannot."""
        column = self.columns[name]
        kind = self.kinds[name]
        if value is None:
            if not column.nullable and not (column.primary_key and self.database_assigns_ids):
                raise BadRequest(f"{name} cannot be null", field=name)
            return None
        if kind == "boolean" and not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false", field=name)
        if kind == "number":
            integer = column.type.python_type is int
            if not is_number(value) or (integer and not isinstance(value, int)):
                raise BadRequest(
                    f"{name} must be {'an integer' if integer else 'a number'}", field=name
                )
            if column.type.python_type is decimal.Decimal:
                return decimal.Decimal(str(value))
        if kind == "string":
            if not isinstance(value, str):
                raise BadRequest(f"{name} must be a string", field=name)
            length = getattr(column.type, "length", None)
            if length is not None and len(value) > length:
                raise BadRequest(f"{name} is longer than {length} characters", field=name)
            check_storable({name: value}, nul_allowed=not self.postgresql)
        if kind in ("datetime", "date", "time", "uuid"):
            parsed = translate.parse_temporal(kind, value)
            if parsed is None:
                what = "a UUID" if kind == "uuid" else f"an ISO 8601 {kind}"
                raise BadRequest(f"{name} must be {what}", field=name)
            if kind == "uuid" and not getattr(column.type, "as_uuid", True):
                return str(parsed)
            return parsed
        if kind == "other":
            check_storable({name: value}, nul_allowed=not self.postgresql)
        return value

    def check_attributes(self, model: Mapping[str, Any]) -> None:
        unknown = sorted(k for k in model if k not in self.columns)
        if unknown:
            raise BadRequest(
                f"Unknown attribute{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(k) for k in unknown)} for table {self.table.name!r}; "
                f"its columns are {', '.join(self.columns)}",
                fields=unknown,
            )

    def row_for(self, model: dict[str, Any]) -> dict[str, Any]:
        self.check_attributes(model)
        if model.get(self.id_attribute) is None:
            if self.database_assigns_ids:
                model.pop(self.id_attribute, None)
            elif self.id_kind == "string" and self.generated_ids_fit:
                model[self.id_attribute] = new_id()
            else:
                raise BadRequest(f"create needs the model's {self.id_attribute}")
        if self.id_attribute in model:
            check_id(model[self.id_attribute], self.id_attribute)
        return {self.columns[k].key: self.column_value(k, v) for k, v in model.items()}

    def values_for_update(self, model: dict[str, Any]) -> dict[str, Any]:
        self.check_attributes(model)
        return {
            self.columns[k].key: self.column_value(k, v)
            for k, v in model.items()
            if k != self.id_attribute
        }

    def values_for_replace(self, model: dict[str, Any]) -> dict[str, Any]:
        """update: what it sends, and NULL for nullable columns it leaves out."""
        values = self.values_for_update(model)
        for name, column in self.columns.items():
            if (
                name not in model
                and name != self.id_attribute
                and column.nullable
                and column.default is None
                and column.server_default is None
            ):
                values[column.key] = None
        return values

    @property
    def selected(self) -> tuple[Any, ...]:
        return tuple(self.columns.values())

    def model_of(self, row: Any) -> dict[str, Any]:
        return {name: json_value(value) for name, value in zip(self.columns, row, strict=True)}


def json_value(value: Any) -> Any:
    """A column value as the JSON value clients see."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
