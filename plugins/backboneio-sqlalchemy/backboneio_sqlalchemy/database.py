"""One pooled engine per database URL, and how its calls stay off the event loop.

Every store on the same URL shares one :class:`Database`: one connection
pool, one gate that keeps the number of requests in flight within the
pool's size, and the decision of where statements run:

* ``sqlite``: ``sqlite3`` is a C extension eventlet cannot make cooperative,
  so each unit of work runs in a real OS thread through
  :func:`backboneio.runner.offload`. Writes to one database file also take a
  green write gate: SQLite has one writer at a time, and waiting in the event
  loop is cheaper than spinning in SQLite's busy handler.
* ``postgresql+psycopg2``: ``backboneio serve`` monkey-patches eventlet before
  loading plugins, which installs psycopg2's wait callback, so every query
  (a lock wait included) yields to other clients while it waits for the
  server. Statements then run in the calling green thread. Without the
  callback (a script that never monkey-patched) they are offloaded like
  SQLite's.

A URL that names no driver gets the one the plugin is built for:
``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg2://`` (the
``[postgresql]`` extra), not SQLAlchemy's own default (psycopg 3 since 2.1,
whose waits eventlet cannot make cooperative). See :func:`resolve_url`.

Connections are checked out of the pool in the calling green thread, never in
an offloaded OS thread: after monkey-patching, the pool's locks are green and
must only be waited on from the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from backboneio import runner
from backboneio.errors import ConfigurationError
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from .jsonvalues import canonical_dumps, plain_dumps

T = TypeVar("T")
#: What a write transaction runs first on a database with a change feed: the
#: feed's trigger records nothing for it (the hub notifies it already).
MARK_ORIGIN = "SELECT set_config('backboneio.origin', 'server', true)"
log = logging.getLogger("backboneio.sqlalchemy")

#: Engine options a backend's settings entry may set directly.
POOL_OPTIONS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle")
#: Drivers written in pure Python: monkey-patched sockets make them cooperative.
PURE_PYTHON_DRIVERS = frozenset({"pg8000", "pymysql"})
#: The driver a URL naming none gets: the one this plugin keeps cooperative
#: (SQLAlchemy 2.1 alone would pick psycopg 3, which the extra does not install).
DEFAULT_DRIVERS = {"postgresql": "psycopg2"}
#: Other spellings of a backend name; ``postgres://`` is what Heroku-style
#: DATABASE_URLs use, and SQLAlchemy refuses it.
BACKEND_ALIASES = {"postgres": "postgresql"}
#: What to install for a driver that is missing.
DRIVER_PACKAGES = {
    "psycopg2": "pip install 'backboneio-sqlalchemy[postgresql]' (psycopg2-binary)",
    "psycopg": "pip install 'psycopg[binary]'",
    "pg8000": "pip install pg8000",
}


def resolve_url(url: str | sa.URL) -> sa.URL:
    """``url`` with the driver the store runs cooperatively, where it names none.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg2://``;
    ``postgres+DRIVER://`` becomes ``postgresql+DRIVER://``; a URL that names
    a driver (``postgresql+psycopg://``) and every other URL are kept as given.
    """
    url = sa.make_url(url)
    backend, _, driver = url.drivername.partition("+")
    backend = BACKEND_ALIASES.get(backend, backend)
    driver = driver or DEFAULT_DRIVERS.get(backend, "")
    drivername = f"{backend}+{driver}" if driver else backend
    return url if drivername == url.drivername else url.set(drivername=drivername)


class Gate:
    """A counting semaphore for green threads, built on the core's runner.

    Only ever entered and left from the event loop's OS thread, so a plain
    counter is safe; a waiter parks on a :class:`backboneio.runner.Signal`.
    """

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[runner.Signal] = deque()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self.free > 0 and not self.waiters:
            self.free -= 1
        else:
            signal = runner.Signal()
            self.waiters.append(signal)
            try:
                signal.wait(None)  # the releaser hands its slot straight to us
            except BaseException:
                # Killed while waiting (a request given up on, a shutdown): a
                # waiter still queued had no slot yet; one already dequeued was
                # handed one, which must go on to the next or the gate shrinks.
                if signal in self.waiters:
                    self.waiters.remove(signal)
                else:
                    self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        if self.waiters:
            self.waiters.popleft().send()
        else:
            self.free += 1


def needs_offload(engine: Engine) -> bool:
    """Whether this engine's DBAPI calls would block the event loop."""
    driver = engine.dialect.driver
    if driver in PURE_PYTHON_DRIVERS:
        return False
    if driver == "psycopg2":
        from psycopg2 import extensions

        return extensions.get_wait_callback() is None
    return True


class Database:
    """A pooled engine plus the rules for running units of work on it."""

    def __init__(self, url: str | sa.URL, options: Mapping[str, Any]) -> None:
        self.url = resolve_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgresql = self.url.get_backend_name() == "postgresql"
        engine_options: dict[str, Any] = {
            "json_serializer": canonical_dumps if self.is_sqlite else plain_dumps,
        }
        memory = self.is_sqlite and self.url.database in (None, "", ":memory:")
        if memory:
            # Every new sqlite3 connection to :memory: is a new, empty database,
            # so keep exactly one and hand it to one request at a time.
            engine_options.update(
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=0,
                connect_args={"check_same_thread": False},
            )
        else:
            engine_options.update(
                {k: options[k] for k in POOL_OPTIONS if options.get(k) is not None}
            )
            # A database restarted under us leaves dead connections in the
            # pool; a cheap ping at checkout replaces them. SQLite files
            # cannot go away like that.
            engine_options["pool_pre_ping"] = not self.is_sqlite
        engine_options.update(options.get("engine_options") or {})
        self.engine_options = engine_options
        # Set when a store on this database has a change feed: its writes then
        # say so to the feed's trigger, which does not record them (changefeed.py).
        self.marks_origin = False
        try:
            self.engine = sa.create_engine(self.url, **engine_options)
        except ImportError as error:
            # Said without the URL itself: a URL may carry a password.
            driver = self.url.get_driver_name()
            install = DRIVER_PACKAGES.get(driver, f"the {driver} package")
            raise ConfigurationError(
                f"The database driver {driver!r} for {self.url.drivername}:// URLs is not "
                f"installed ({error}); install it with: {install}"
            ) from error
        if self.is_sqlite:
            _configure_sqlite(self.engine, wal=not memory)
        pool = self.engine.pool
        size = pool.size() if isinstance(pool, QueuePool) else 5
        overflow = getattr(pool, "_max_overflow", 0)
        self.gate = Gate(max(1, size + max(0, overflow)))
        self.write_gate = Gate(1) if self.is_sqlite else None
        offload = options.get("offload")
        self.offload = needs_offload(self.engine) if offload is None else bool(offload)

    def __repr__(self) -> str:
        return f"<Database {self.url.render_as_string(hide_password=True)}>"

    def run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        """Run ``work(connection)`` in one transaction, committed if it returns."""
        write_gate = self.write_gate if write else None
        if write_gate is None:
            with self.gate():
                return self._run(work, write)
        with write_gate(), self.gate():
            return self._run(work, write)

    def _run(self, work: Callable[[Connection], T], write: bool) -> T:
        with self.engine.connect() as conn:
            if write and self.is_sqlite:
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")

            def unit() -> T:
                with conn.begin():
                    if write and self.marks_origin:
                        conn.exec_driver_sql(MARK_ORIGIN)
                    return work(conn)

            return runner.offload(unit) if self.offload else unit()

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    # pysqlite's own transaction handling opens transactions lazily and never
    # for SELECT, so a read-modify-write (patch) would not be isolated. Take
    # transactions over: the driver in autocommit mode, BEGIN issued by us.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout = 30000")
            if wal:
                # Readers then never wait for a writer (other processes included).
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


_databases: dict[tuple[str, str], Database] = {}
_databases_lock = threading.Lock()


def get_database(url: str | sa.URL, options: Mapping[str, Any]) -> Database:
    """The shared :class:`Database` for ``url`` (created with ``options`` the first time).

    URLs that resolve to the same driver (``postgresql://`` and
    ``postgresql+psycopg2://``) share one.
    """
    key = (
        resolve_url(url).render_as_string(hide_password=False),
        repr(
            sorted((k, repr(options.get(k))) for k in (*POOL_OPTIONS, "offload", "engine_options"))
        ),
    )
    with _databases_lock:
        database = _databases.get(key)
        if database is None:
            database = _databases[key] = Database(url, options)
        return database


def dispose_all() -> None:
    """Close every pooled connection (tests, and scripts that are done)."""
    with _databases_lock:
        databases = list(_databases.values())
        _databases.clear()
    for database in databases:
        database.dispose()


def is_unavailable(error: exc.DBAPIError, database: Database) -> bool:
    """Connection trouble (retry later), as opposed to a statement the database refused."""
    if error.connection_invalidated or isinstance(error, exc.InterfaceError):
        return True
    if not isinstance(error, exc.OperationalError):
        return False
    if database.is_sqlite:
        message = str(error.orig).lower()
        return any(s in message for s in ("locked", "busy", "unable to open", "disk i/o"))
    return True
