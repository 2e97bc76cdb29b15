"""The ``sqlalchemy`` store: the five sync methods as SQL, one transaction each.

In a versioned store an update or delete made from a version is one
conditional statement (``... WHERE id = :id AND <version> = :v``): when it
touches no row, the row is read to tell NotFound from Conflict. A patch of
a document table reads, merges and writes under the row lock its write
transaction takes, so its version check is inside that lock.

A write with an idempotency key records the key in its own transaction
(keys.py); when the key turns out to be recorded already, the transaction is
rolled back and the recorded answer is replayed, so a retry never applies
twice (docs/idempotency.md).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from backboneio.backend import WRITE_METHODS, Request, Response
from backboneio.errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    SyncError,
    Unavailable,
)
from backboneio.idempotency import IdempotencyKey, error_answer, remembered, result_answer
from backboneio.query import Query
from backboneio.stores import (
    check_version_attribute,
    sent_version,
    stored_version,
    version_conflict,
)
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from .database import Database, is_unavailable
from .keys import KeyTable
from .tables import ColumnTable, DocumentTable

log = logging.getLogger("backboneio.sqlalchemy")
Table = DocumentTable | ColumnTable
T = TypeVar("T")
#: Attempts at a keyed write whose key was recorded, then expired, meanwhile.
KEYED_ATTEMPTS = 3


class _Recorded(Exception):
    """Raised inside a write transaction to roll it back: its key was recorded already."""


class SQLAlchemyStore:
    """A store middleware keeping one backend's models in one SQL table.

    Build it with :func:`backboneio_sqlalchemy.store` or through settings
    (``{"store": "sqlalchemy", "url": ...}``). ``table`` is a
    :class:`DocumentTable` or a :class:`ColumnTable`; it is created or
    checked on the first request that reaches the database, so a server can
    start while its database is still coming up.
    """

    def __init__(
        self,
        database: Database,
        table: Table | Callable[[Connection], Table],
        *,
        backend: str = "",
        id_attribute: str = "id",
        max_limit: int | None = None,
        version_attribute: str | None = None,
        change_feed: bool = False,
        idempotency_keys: bool = True,
    ) -> None:
        check_version_attribute(version_attribute, id_attribute)
        if not isinstance(idempotency_keys, bool):
            raise ConfigurationError(
                f"idempotency_keys must be True or False, got {idempotency_keys!r}"
            )
        if not isinstance(change_feed, bool):
            raise ConfigurationError(f"change_feed must be True or False, got {change_feed!r}")
        if change_feed:
            where = f"backend {backend!r}" if backend else "this store"
            if not database.is_postgresql:
                raise ConfigurationError(
                    f"'change_feed' of {where} needs PostgreSQL (a trigger and LISTEN/NOTIFY); "
                    f"its database is {database.url.get_backend_name()}. Remove 'change_feed' "
                    "or use a postgresql:// URL"
                )
            if database.url.get_driver_name() != "psycopg2":
                raise ConfigurationError(
                    f"'change_feed' of {where} needs the psycopg2 driver, not "
                    f"{database.url.get_driver_name()!r}; use a postgresql:// URL"
                )
            # Its own writes then tell the trigger not to record them.
            database.marks_origin = True
        if max_limit is not None and (
            isinstance(max_limit, bool) or not isinstance(max_limit, int) or max_limit < 1
        ):
            raise ConfigurationError(
                f"max_limit must be a positive integer or None, got {max_limit!r}"
            )
        self.database = database
        self.backend = backend
        self.id_attribute = id_attribute
        self.max_limit = max_limit
        self.version_attribute = version_attribute
        self.change_feed = change_feed
        # Keys go in a table of their own next to the models' (keys.py).
        self.remembers_keys = idempotency_keys
        self._keys: KeyTable | None = None
        self._table_source = table
        self._table: Table | None = None if callable(table) else table
        if self._table is not None and version_attribute is not None:
            self._table.check_version_attribute(version_attribute)
        self._prepared = False

    def __repr__(self) -> str:
        name = self._table.name if self._table is not None else "?"
        return f"<SQLAlchemyStore {self.backend!r} table {name!r} on {self.database!r}>"

    # -- middleware -----------------------------------------------------------

    def __call__(self, req: Request, res: Response, next: Callable[..., None]) -> None:
        handler = getattr(self, f"_{req.method}")
        key = req.idempotency if self.remembers_keys and req.method in WRITE_METHODS else None
        try:
            try:
                self._prepare()
                result = handler(req)
            except exc.SQLAlchemyError as error:
                raise self._public(error, req) from error
        except SyncError as error:
            if key is None or not remembered(error):
                raise
            result = self._refusal_answer(key, error)
        res.end(result)

    # -- idempotency keys -------------------------------------------------------

    def _write(self, req: Request, work: Callable[[Connection], T]) -> T:
        """Run a write's transaction; with a key, record it in the same transaction."""
        key = req.idempotency if self.remembers_keys else None
        if key is None:
            return self.database.run(work, write=True)
        keys = self._keys
        assert keys is not None

        def keyed(conn: Connection) -> T:
            result = work(conn)
            if not keys.record(conn, key, result_answer(result)):
                raise _Recorded  # rolls the write back
            return result

        for _ in range(KEYED_ATTEMPTS):
            try:
                return self.database.run(keyed, write=True)
            except _Recorded:
                record = self.database.run(lambda conn: keys.lookup(conn, key), write=False)
                if record is not None:
                    return cast(T, key.replay(record))
        raise Unavailable("This write's idempotencyKey is busy; try again later")

    def _refusal_answer(self, key: IdempotencyKey, error: SyncError) -> Any:
        """A 4xx error is the key's answer, unless the key was recorded meanwhile
        (a retry of a write that did land): then that answer is replayed."""
        keys = self._keys
        if keys is None:
            raise error
        try:
            if self.database.run(
                lambda conn: keys.record(conn, key, error_answer(error)), write=True
            ):
                raise error
            record = self.database.run(lambda conn: keys.lookup(conn, key), write=False)
        except exc.SQLAlchemyError:
            # The refusal stands; only its record is missing, and nothing was written.
            log.warning("could not record the idempotency key of a refused %s", key.method)
            raise error from None
        if record is None:
            raise error
        return key.replay(record)

    def _prepare(self) -> None:
        if self._prepared:
            return

        def prepare(conn: Connection) -> None:
            table = self._table
            if table is None:
                table = self._table_source(conn)  # type: ignore[operator]
                if self.version_attribute is not None:
                    table.check_version_attribute(self.version_attribute)
            table.prepare(conn)
            if self.remembers_keys:
                keys = KeyTable(
                    f"{table.name}_idempotency",
                    schema=table.table.schema,
                    postgresql=self.database.is_postgresql,
                )
                keys.prepare(conn)
                self._keys = keys
            self._table = table

        # DDL takes SQLite's write lock; on PostgreSQL two servers may race to
        # create the table, and the loser's error is only "it exists now".
        try:
            self.database.run(prepare, write=True)
        except exc.IntegrityError:
            self.database.run(prepare, write=True)
        except exc.ProgrammingError as error:
            if "already exists" not in str(error.orig):
                raise
            self.database.run(prepare, write=True)
        self._prepared = True

    @property
    def table(self) -> Table:
        if self._table is None:
            self._prepare()
        assert self._table is not None
        return self._table

    def _public(self, error: exc.SQLAlchemyError, req: Request) -> Exception:
        """A database error as what the client may see: no SQL, URL or password."""
        where = f"backend {self.backend!r}" if self.backend else "this backend"
        if isinstance(error, exc.DBAPIError) and is_unavailable(error, self.database):
            log.warning("database of %s unavailable: %s", where, error.orig)
            return Unavailable(f"The database of {where} is unavailable; try again later")
        if isinstance(error, exc.TimeoutError):
            log.warning("database of %s: no free connection in the pool: %s", where, error)
            return Unavailable(f"The database of {where} is busy; try again later")
        if isinstance(error, (exc.DataError, exc.IntegrityError)):
            log.info("database of %s refused a %s: %s", where, req.method, error.orig)
            return BadRequest(
                f"The database refused this {req.method}: a value does not fit its column "
                "or breaks a constraint of the table"
            )
        if isinstance(error, exc.StatementError) and isinstance(
            error.orig, (ValueError, TypeError)
        ):
            return BadRequest(f"The database cannot hold a value of this {req.method}")
        return error  # logged by the server; the client gets a ServerError

    # -- the five methods -------------------------------------------------------

    def _get_id(self, req: Request) -> Any:
        model_id = req.model_id
        if model_id is None:
            raise BadRequest(f"{req.method} needs the model's {self.id_attribute}")
        return model_id

    def _fetch_one(self, conn: Connection, req: Request, *, lock: bool = False) -> dict[str, Any]:
        table = self.table
        stmt = sa.select(*table.selected).where(table.where_id(self._get_id(req)))
        if lock and self.database.is_postgresql:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            raise req.not_found()
        return table.model_of(row)

    def _create(self, req: Request) -> dict[str, Any]:
        table = self.table
        model = copy.deepcopy(req.model)
        if self.version_attribute is not None:
            model[self.version_attribute] = 1
        values = table.row_for(model)

        def create(conn: Connection) -> dict[str, Any]:
            insert = sa.insert(table.table).values(values)
            if isinstance(table, ColumnTable):
                # The row as stored: database-assigned id, column defaults.
                return table.model_of(conn.execute(insert.returning(*table.selected)).one())
            conn.execute(insert)
            return model

        try:
            return self._write(req, create)
        except exc.IntegrityError as error:
            model_id = model.get(self.id_attribute)
            if model_id is not None and self._exists(model_id):
                raise Conflict(
                    f"{self.id_attribute} {model_id!r} already exists", id=model_id
                ) from error
            raise

    def _exists(self, model_id: Any) -> bool:
        table = self.table

        def exists(conn: Connection) -> bool:
            stmt = sa.select(sa.literal(1)).select_from(table.table)
            return conn.execute(stmt.where(table.where_id(model_id))).first() is not None

        return self.database.run(exists, write=False)

    def _read(self, req: Request) -> Any:
        if req.model_id is not None:
            return self.database.run(lambda conn: self._fetch_one(conn, req), write=False)
        query = Query.parse(req.query, max_limit=self.max_limit, id_attribute=self.id_attribute)
        return self.database.run(lambda conn: self._query(conn, query), write=False)

    def _query(self, conn: Connection, query: Query) -> list[Any]:
        table = self.table
        plan = table.translator.plan(query)
        stmt = sa.select(*table.selected)
        if plan.where is not None:
            stmt = stmt.where(plan.where)
        if not plan.exact:
            # The documented fallback: SQL narrowed the rows as far as it could.
            stmt = stmt.order_by(*table.default_order)
            return query.apply(table.model_of(row) for row in conn.execute(stmt))
        stmt = stmt.order_by(*(plan.order_by or table.default_order))
        if query.skip:
            stmt = stmt.offset(query.skip)
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        return [query.project(table.model_of(row)) for row in conn.execute(stmt)]

    def _update(self, req: Request) -> dict[str, Any]:
        if self.version_attribute is not None:
            return self._versioned_update(req, self.version_attribute)
        table = self.table
        model_id = self._get_id(req)
        model = copy.deepcopy(req.model)
        where = table.where_id(model_id)
        if isinstance(table, ColumnTable):
            values = table.values_for_replace(model)
        else:
            values = table.values_for_update(model)

        def update(conn: Connection) -> dict[str, Any]:
            if not values:  # nothing but the id: the row must still exist
                return self._fetch_one(conn, req)
            stmt = sa.update(table.table).where(where).values(values)
            stmt = stmt.returning(*table.selected)
            row = conn.execute(stmt).first()
            if row is None:
                raise req.not_found()
            return table.model_of(row) if isinstance(table, ColumnTable) else model

        return self._write(req, update)

    def _patch(self, req: Request) -> dict[str, Any]:
        if self.version_attribute is not None:
            return self._versioned_patch(req, self.version_attribute)
        table = self.table
        self._get_id(req)
        changes = copy.deepcopy(req.model)
        if isinstance(table, ColumnTable):
            values = table.values_for_update(changes)
        else:
            table.values_for_update(changes)  # refuse what the body cannot hold

        def patch(conn: Connection) -> dict[str, Any]:
            # A write transaction (BEGIN IMMEDIATE on SQLite, FOR UPDATE on
            # PostgreSQL): concurrent patches of one model all survive.
            current = self._fetch_one(conn, req, lock=True)
            if isinstance(table, ColumnTable):
                if not values:
                    return current
                stmt = sa.update(table.table).where(table.where_id(req.model_id)).values(values)
                return table.model_of(conn.execute(stmt.returning(*table.selected)).one())
            merged = {**current, **changes}
            conn.execute(
                sa.update(table.table)
                .where(table.where_id(req.model_id))
                .values(table.values_for_update(merged))
            )
            return merged

        return self._write(req, patch)

    def _delete(self, req: Request) -> dict[str, Any]:
        if self.version_attribute is not None:
            return self._versioned_delete(req, self.version_attribute)
        table = self.table
        where = table.where_id(self._get_id(req))

        def delete(conn: Connection) -> dict[str, Any]:
            stmt = sa.delete(table.table).where(where).returning(*table.selected)
            row = conn.execute(stmt).first()
            if row is None:
                raise req.not_found()
            return table.model_of(row)

        return self._write(req, delete)

    # -- versioned writes -------------------------------------------------------

    def _refused(self, conn: Connection, req: Request, attribute: str, sent: int) -> SyncError:
        """Why a write conditional on ``sent`` touched no row: NotFound, or Conflict."""
        current = self._fetch_one(conn, req)  # raises NotFound when the row is gone
        return version_conflict(req.method, attribute, sent, current)

    def _versioned_update(self, req: Request, attribute: str) -> dict[str, Any]:
        table = self.table
        where = table.where_id(self._get_id(req))
        model = copy.deepcopy(req.model)
        sent = sent_version(model, attribute)
        model.pop(attribute, None)
        if isinstance(table, ColumnTable):
            values = table.values_for_replace(model)
            key = table.version_key(attribute)
            if sent is None:
                values[key] = table.stored_version(attribute) + 1
            else:
                values[key] = sent + 1
                where = sa.and_(where, table.where_version(attribute, sent))

            def update_columns(conn: Connection) -> dict[str, Any]:
                stmt = sa.update(table.table).where(where).values(values)
                row = conn.execute(stmt.returning(*table.selected)).first()
                if row is not None:
                    return table.model_of(row)
                if sent is None:
                    raise req.not_found()
                raise self._refused(conn, req, attribute, sent)

            return self._write(req, update_columns)

        table.values_for_update(model)  # refuse what the body cannot hold before any SQL

        def update_document(conn: Connection) -> dict[str, Any]:
            if sent is None:
                # Unconditional: the new version is the stored one plus one,
                # read under the write transaction's lock.
                version = stored_version(self._fetch_one(conn, req, lock=True), attribute) + 1
                condition = where
            else:
                version = sent + 1
                condition = sa.and_(where, table.where_version(attribute, sent))
            stored = {**model, attribute: version}
            stmt = sa.update(table.table).where(condition).values(table.values_for_update(stored))
            if conn.execute(stmt).rowcount == 1:
                return stored
            if sent is None:
                raise req.not_found()
            raise self._refused(conn, req, attribute, sent)

        return self._write(req, update_document)

    def _versioned_patch(self, req: Request, attribute: str) -> dict[str, Any]:
        table = self.table
        where = table.where_id(self._get_id(req))
        changes = copy.deepcopy(req.model)
        sent = sent_version(changes, attribute)
        changes.pop(attribute, None)
        if isinstance(table, ColumnTable):
            values = table.values_for_update(changes)
            key = table.version_key(attribute)
            if sent is None:
                values[key] = table.stored_version(attribute) + 1
            else:
                values[key] = sent + 1
                where = sa.and_(where, table.where_version(attribute, sent))

            def patch_columns(conn: Connection) -> dict[str, Any]:
                stmt = sa.update(table.table).where(where).values(values)
                row = conn.execute(stmt.returning(*table.selected)).first()
                if row is not None:
                    return table.model_of(row)
                if sent is None:
                    raise req.not_found()
                raise self._refused(conn, req, attribute, sent)

            return self._write(req, patch_columns)

        table.values_for_update(changes)  # refuse what the body cannot hold

        def patch_document(conn: Connection) -> dict[str, Any]:
            # The merge needs the stored body, read under the write
            # transaction's lock (BEGIN IMMEDIATE on SQLite, FOR UPDATE on
            # PostgreSQL), so the check and the write are one step.
            current = self._fetch_one(conn, req, lock=True)
            version = stored_version(current, attribute)
            if sent is not None and sent != version:
                raise version_conflict(req.method, attribute, sent, current)
            merged = {**current, **changes, attribute: version + 1}
            conn.execute(
                sa.update(table.table).where(where).values(table.values_for_update(merged))
            )
            return merged

        return self._write(req, patch_document)

    def _versioned_delete(self, req: Request, attribute: str) -> dict[str, Any]:
        table = self.table
        where = table.where_id(self._get_id(req))
        sent = sent_version(req.model, attribute)
        if sent is not None:
            where = sa.and_(where, table.where_version(attribute, sent))

        def delete(conn: Connection) -> dict[str, Any]:
            stmt = sa.delete(table.table).where(where).returning(*table.selected)
            row = conn.execute(stmt).first()
            if row is not None:
                return table.model_of(row)
            if sent is None:
                raise req.not_found()
            raise self._refused(conn, req, attribute, sent)

        return self._write(req, delete)
