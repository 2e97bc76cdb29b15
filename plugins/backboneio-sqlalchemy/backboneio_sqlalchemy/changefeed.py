"""The change feed: writes made outside backboneio reach the clients (PostgreSQL).

With ``"change_feed": True`` a backend's table gets a trigger,
``backboneio_change_feed``, that records every INSERT, UPDATE and DELETE
into an outbox table, ``backboneio_outbox`` (in the table's schema), in the
same transaction as the write, and sends ``NOTIFY backboneio_outbox`` with
the table's ``schema.name`` as payload. Each server process runs one
:class:`ChangeFeed` per such backend, a green thread that:

1. holds its own connection (not one of the pool's), ``LISTEN``\\ s, and
   tries to become the table's drainer: a session advisory lock, so of
   several processes exactly one turns the outbox into notifications, in
   outbox order (the others try again every second and on every NOTIFY;
   the lock goes with its holder's connection);
2. as the drainer, claims rows with one ``DELETE ... RETURNING`` (``FOR
   UPDATE SKIP LOCKED``), commits, then calls :meth:`backboneio.Hub.record`
   for each, so ``after_write`` and the change log run as for any write;
3. waits for a NOTIFY (``select`` on the connection's socket, cooperative
   under eventlet) or one second, whichever is first, and drains again.

The NOTIFY is only a wake-up: the outbox is the truth, so rows written
while no server runs, or while the feed reconnects after a database
restart, are delivered when it is back.

The store's own writes set ``backboneio.origin = 'server'`` for their
transaction (``set_config(..., true)``); the trigger records nothing for
them, since the hub notifies them already.
"""

from __future__ import annotations

import logging
import select
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from backboneio import runner
from sqlalchemy import exc
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from .database import POOL_OPTIONS, Database
from .tables import ColumnTable

if TYPE_CHECKING:
    from backboneio import Hub

    from .store import SQLAlchemyStore

log = logging.getLogger("backboneio.sqlalchemy")

OUTBOX = "backboneio_outbox"
FUNCTION = "backboneio_outbox_record"
TRIGGER = "backboneio_change_feed"
CHANNEL = "backboneio_outbox"
#: The transaction-local setting the store's writes set, and its value.
ORIGIN_SETTING = "backboneio.origin"
ORIGIN_SERVER = "server"
#: Seconds between drains when no NOTIFY comes (the fallback poll).
POLL_SECONDS = 1.0
#: Reconnecting: the first wait, doubled up to the last.
RECONNECT_FIRST, RECONNECT_MAX = 0.1, 1.0
#: libpq options of the feed's connection, unless engine_options' connect_args say otherwise.
FEED_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
#: Rows claimed per transaction.
BATCH = 500
#: First key of the advisory locks ("bbio"); the second is the table's oid.
LOCK_CLASS = 0x6262696F

METHODS = {"INSERT": "create", "UPDATE": "update", "DELETE": "delete"}

# The installation takes this transaction lock first, so servers starting
# together do not race on CREATE OR REPLACE FUNCTION.
INSTALL_LOCK = f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, 0)"

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS {outbox} (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    op text NOT NULL,
    data jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
)
"""
OUTBOX_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON {outbox} (source, id)"

# TG_ARGV[0] is the id column: an UPDATE that changes it is recorded as the
# old row's DELETE and the new row's INSERT, so clients drop the old model.
FUNCTION_DDL = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    v_source text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
    v_key text := TG_ARGV[0];
BEGIN
    IF current_setting('{setting}', true) = '{server}' THEN
        RETURN NULL;  -- backboneio's own write: the server notifies it already
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {outbox} (source, op, data) VALUES (v_source, 'INSERT', to_jsonb(NEW));
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {outbox} (source, op, data) VALUES (v_source, 'DELETE', to_jsonb(OLD));
    ELSIF to_jsonb(OLD) -> v_key IS DISTINCT FROM to_jsonb(NEW) -> v_key THEN
        INSERT INTO {outbox} (source, op, data)
            VALUES (v_source, 'DELETE', to_jsonb(OLD)), (v_source, 'INSERT', to_jsonb(NEW));
    ELSE
        INSERT INTO {outbox} (source, op, data) VALUES (v_source, 'UPDATE', to_jsonb(NEW));
    END IF;
    PERFORM pg_notify('{channel}', v_source);
    RETURN NULL;
END
$body$
"""
TRIGGER_DDL = """
CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION {function}({key})
"""


def quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def is_connection_error(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, (exc.OperationalError, exc.InterfaceError)
        )
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - the feed needs psycopg2
        return False
    return isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError))


def feed_engine(database: Database) -> sa.Engine:
    """An engine for the feed's one long-lived connection, outside the store's pool."""
    options = {
        k: v for k, v in database.engine_options.items() if k not in (*POOL_OPTIONS, "poolclass")
    }
    options.pop("pool_pre_ping", None)
    # A database that vanishes without closing the connection (a network
    # partition) is noticed within seconds, not at the kernel's TCP timeout.
    options["connect_args"] = {**FEED_CONNECT_ARGS, **(options.get("connect_args") or {})}
    return sa.create_engine(database.url, **options, poolclass=NullPool)


class ChangeFeed:
    """Turns one backend's outbox rows into notifications; see the module's docstring."""

    def __init__(self, hub: Hub, backend: str, store: SQLAlchemyStore) -> None:
        self.hub = hub
        self.backend = backend
        self.store = store
        self.database = store.database
        self.engine = feed_engine(self.database)
        self.source = ""  # "schema.table", what the trigger records
        self.lock_key = 0
        self.installed = False
        self.draining = False  # holds the lock: this process is the drainer
        self.stopped = False
        self.delivered = 0  # rows turned into notifications by this process
        self.connects = 0
        self._conn: Connection | None = None
        self._thread: Any = None
        self._claim: Any = None

    def __repr__(self) -> str:
        return f"<ChangeFeed {self.backend!r} {self.source or '(not installed)'}>"

    # -- life -----------------------------------------------------------------

    def install(self) -> None:
        """Create the store's table, the outbox, the function and the trigger.

        Idempotent; several processes may run it at once.
        """
        self.store._prepare()  # the document table, or the checked column table
        table = self.store.table
        with self.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql(INSTALL_LOCK)
            qualified = ".".join(
                quote(conn, part) for part in (table.table.schema, table.table.name) if part
            )
            schema, name, oid = conn.execute(
                sa.text(
                    "SELECT n.nspname, c.relname, c.oid FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.oid = to_regclass(:name)"
                ),
                {"name": qualified},
            ).one()
            names = {
                "outbox": f"{quote(conn, schema)}.{quote(conn, OUTBOX)}",
                "index": quote(conn, f"{OUTBOX}_source"),
                "function": f"{quote(conn, schema)}.{quote(conn, FUNCTION)}",
                "trigger": quote(conn, TRIGGER),
                "table": f"{quote(conn, schema)}.{quote(conn, name)}",
                "key": literal(self._id_column(table)),
                "setting": ORIGIN_SETTING,
                "server": ORIGIN_SERVER,
                "channel": CHANNEL,
            }
            conn.exec_driver_sql(OUTBOX_DDL.format(**names))
            conn.exec_driver_sql(OUTBOX_INDEX.format(**names))
            conn.exec_driver_sql(FUNCTION_DDL.format(**names))
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_trigger WHERE tgrelid = :oid AND tgname = :name"),
                {"oid": oid, "name": TRIGGER},
            ).first()
            if exists is None:
                conn.exec_driver_sql(TRIGGER_DDL.format(**names))
            self._claim = self._claim_statement(conn, names["outbox"], names["table"])
        self.source = f"{schema}.{name}"
        self.lock_key = oid - (1 << 32) if oid >= (1 << 31) else oid  # as an int4
        self.installed = True

    @staticmethod
    def _id_column(table: Any) -> str:
        if isinstance(table, ColumnTable):
            return str(table.id_column.name)
        return "id"

    def _claim_statement(self, conn: Connection, outbox: str, table: str) -> Any:
        # The row image goes back through the table's own row type, so
        # model_of() sees the values a SELECT of the store would.
        selected = list(self.store.table.selected)
        columns = ", ".join(f"r.{quote(conn, c.name)} AS c{i}" for i, c in enumerate(selected))
        text = (
            f"WITH claimed AS (DELETE FROM {outbox} WHERE id IN ("
            f"SELECT id FROM {outbox} WHERE source = :source ORDER BY id LIMIT :batch "
            "FOR UPDATE SKIP LOCKED) RETURNING id, op, data) "
            f"SELECT claimed.id AS outbox_id, claimed.op AS op, {columns} FROM claimed "
            f"CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, claimed.data) AS r "
            "ORDER BY claimed.id"
        )
        return sa.text(text).columns(
            sa.column("outbox_id", sa.BigInteger()),
            sa.column("op", sa.Text()),
            *(sa.column(f"c{i}", c.type) for i, c in enumerate(selected)),
        )

    def start(self) -> None:
        self._thread = runner.spawn(self.run)

    def stop(self) -> None:
        self.stopped = True
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.kill()
        self._close()
        self.engine.dispose()

    def run(self) -> None:
        delay = RECONNECT_FIRST
        while not self.stopped:
            try:
                self._follow()
            except Exception as error:
                self._close()
                if self.stopped:
                    return
                if is_connection_error(error):
                    log.warning(
                        "change feed of %r: database unavailable (%s); retrying in %.1f s",
                        self.backend,
                        " ".join(str(getattr(error, "orig", error)).split()),
                        delay,
                    )
                else:
                    log.exception(
                        "change feed of %r failed; retrying in %.1f s", self.backend, delay
                    )
                runner.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
            else:
                delay = RECONNECT_FIRST

    def _close(self) -> None:
        self.draining = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never back to a pool: the session (and its lock) ends
                conn.close()
            except Exception:  # already gone
                pass

    # -- following --------------------------------------------------------------

    def _follow(self) -> None:
        if not self.installed:
            self.install()
        conn = self._conn = self.engine.connect()
        with conn.begin():
            conn.exec_driver_sql(f"LISTEN {CHANNEL}")
        self.connects += 1
        if self.connects > 1:
            log.info("change feed of %r: connected again", self.backend)
        while not self.hub.started:  # the change log takes entries once serving began
            runner.sleep(0.02)
        dbapi = conn.connection.dbapi_connection
        while not self.stopped:
            # The drainer keeps its lock while its connection lives; the
            # others try for it on every wake-up, to take over if it goes.
            if self.draining or self._take_lock(conn):
                self._drain(conn)
            self._wait(dbapi, POLL_SECONDS)

    def _take_lock(self, conn: Connection) -> bool:
        with conn.begin():
            taken = conn.execute(
                sa.text(f"SELECT pg_try_advisory_lock({LOCK_CLASS}, :key)"),
                {"key": self.lock_key},
            ).scalar()
        if taken and not self.draining:
            log.info("change feed of %r: this process drains %s", self.backend, self.source)
        self.draining = bool(taken)
        return self.draining

    def _drain(self, conn: Connection) -> None:
        table = self.store.table
        while self.hub.log_available():  # else the rows wait in the outbox, durable
            # Committed before anyone is notified: a row is claimed once. A
            # commit that fails (the database going away) most likely rolled
            # back, so its rows stay in the outbox and come again.
            with conn.begin():
                rows = conn.execute(self._claim, {"source": self.source, "batch": BATCH}).all()
            for row in rows:
                try:
                    model = table.model_of(row[2:])
                except Exception:  # one row the store cannot read must not cost the others
                    log.exception("change feed of %r: outbox row %s skipped", self.backend, row[0])
                    continue
                self.hub.record(self.backend, METHODS[row.op], model, None)
                self.delivered += 1
            if len(rows) < BATCH:
                return

    def _wait(self, dbapi: Any, timeout: float) -> bool:
        """Wait for a NOTIFY about our table, at most ``timeout`` seconds; True if one came."""
        deadline = time.monotonic() + timeout
        while True:
            dbapi.poll()
            if dbapi.notifies:
                ours = any(n.payload == self.source for n in dbapi.notifies)
                dbapi.notifies.clear()
                if ours:
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stopped:
                return False
            # Cooperative once monkey-patched (the feed refuses to start otherwise).
            select.select([dbapi], [], [], remaining)
