"""backboneio-sqlalchemy: keep a backend's models in SQLite or PostgreSQL.

Installed, it registers the ``sqlalchemy`` store through the ``backboneio``
entry point group::

    BACKENDS = {
        # a table "todos" of JSON documents, created in ./backboneio.sqlite3
        "todos": {"store": "sqlalchemy"},
        # the same on PostgreSQL (jsonb), pool options passed to SQLAlchemy
        "messages": {"store": "sqlalchemy", "url": "postgresql+psycopg2://app@/app",
                     "pool_size": 10},
        # an existing table whose columns are the model's attributes
        "people": {"store": "sqlalchemy", "url": "postgresql+psycopg2://app@/app",
                   "model": "myapp.models.Person"},
    }

Or in Python: ``backend.use(backboneio_sqlalchemy.store("sqlite:///app.db", table="todos"))``.
docs/stores-sqlalchemy.md has the details: table shapes, queries, concurrency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from backboneio import hookimpl
from backboneio.errors import ConfigurationError
from backboneio.stores import StoreConfig
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from backboneio import Hub

from .changefeed import ChangeFeed, is_connection_error
from .database import POOL_OPTIONS, Database, dispose_all, get_database
from .store import SQLAlchemyStore
from .tables import ColumnTable, DocumentTable

log = logging.getLogger("backboneio.sqlalchemy")

__all__ = [
    "DEFAULT_URL",
    "OPTIONS",
    "ChangeFeed",
    "ColumnTable",
    "Database",
    "DocumentTable",
    "SQLAlchemyStore",
    "dispose_all",
    "make_store",
    "store",
]

#: Where models go when neither the backend nor SQLALCHEMY_URL names a database.
DEFAULT_URL = "sqlite:///backboneio.sqlite3"

#: The keys a backend's settings entry may hold for this store, with defaults.
OPTIONS: dict[str, Any] = {
    "url": None,
    "table": None,
    "schema": None,
    "model": None,
    "reflect": False,
    "max_limit": None,
    **{name: None for name in POOL_OPTIONS},
    "offload": None,
    "engine_options": None,
    "change_feed": False,
    "idempotency_keys": True,
}


def store(
    url: str = DEFAULT_URL,
    table: str = "models",
    *,
    id_attribute: str = "id",
    model: Any = None,
    reflect: bool = False,
    schema: str | None = None,
    max_limit: int | None = None,
    backend: str = "",
    version_attribute: str | None = None,
    change_feed: bool = False,
    idempotency_keys: bool = True,
    **options: Any,
) -> SQLAlchemyStore:
    """A store for ``backend.use()``: documents in ``table`` of the database at ``url``.

    ``model`` (an ORM class, a :class:`sqlalchemy.Table` or a dotted path to
    one) or ``reflect=True`` keep models in an existing table's columns
    instead. ``version_attribute="_version"`` makes it versioned
    (docs/conflicts.md). ``change_feed=True`` (PostgreSQL) notifies clients of
    writes made to the table by anything else (docs/stores-sqlalchemy.md,
    "Change feed"). ``idempotency_keys=False`` keeps no table of idempotency keys
    (docs/idempotency.md). ``options`` are pool options (``pool_size``...), ``offload`` and
    ``engine_options`` (passed to :func:`sqlalchemy.create_engine`).
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"Unknown store option(s) {', '.join(unknown)}")
    database = get_database(url, options)
    postgresql = database.is_postgresql
    if not (database.is_sqlite or postgresql):
        raise ConfigurationError(
            f"The sqlalchemy store supports SQLite and PostgreSQL, not {database.url.drivername!r}"
        )
    source: Any
    if model is not None:
        source = _column_table(_load_model(model), id_attribute, postgresql)
    elif reflect:

        def source(conn: Connection) -> ColumnTable:
            try:
                reflected = sa.Table(table, sa.MetaData(schema=schema), autoload_with=conn)
            except sa.exc.NoSuchTableError:
                raise ConfigurationError(
                    f"Table {table!r} does not exist; 'reflect' uses an existing table"
                ) from None
            return _column_table(reflected, id_attribute, postgresql)

    else:
        source = DocumentTable(table, id_attribute, postgresql=postgresql, schema=schema)
    return SQLAlchemyStore(
        database,
        source,
        backend=backend,
        id_attribute=id_attribute,
        max_limit=max_limit,
        version_attribute=version_attribute,
        change_feed=change_feed,
        idempotency_keys=idempotency_keys,
    )


def _load_model(model: Any) -> Any:
    if isinstance(model, str):
        from backboneio.app import import_dotted

        return import_dotted(model, what="the sqlalchemy store's 'model'")
    return model


def _column_table(model: Any, id_attribute: str, postgresql: bool) -> ColumnTable:
    if isinstance(model, sa.Table):
        return ColumnTable(
            model, {c.key: c for c in model.columns}, id_attribute, postgresql=postgresql
        )
    try:
        mapper = sa.inspect(model)
        attributes = {attr.key: attr.columns[0] for attr in mapper.column_attrs}
        table = mapper.local_table
    except sa.exc.NoInspectionAvailable:
        raise ConfigurationError(
            f"The sqlalchemy store's 'model' must be an ORM class or a Table, got {model!r}"
        ) from None
    return ColumnTable(table, attributes, id_attribute, postgresql=postgresql)


def make_store(config: StoreConfig) -> SQLAlchemyStore:
    """The factory behind ``{"store": "sqlalchemy"}``."""
    options: Mapping[str, Any] = config.options
    settings_url = config.settings.get("SQLALCHEMY_URL") if config.settings else None
    url = options.get("url") or settings_url or DEFAULT_URL
    if not isinstance(url, str):
        raise ConfigurationError(f"BACKENDS[{config.backend!r}]['url'] must be a string")
    extra = {
        k: options[k]
        for k in (*POOL_OPTIONS, "offload", "engine_options")
        if options.get(k) is not None
    }
    try:
        return store(
            url,
            options.get("table") or config.backend,
            id_attribute=config.id_attribute,
            model=options.get("model"),
            reflect=bool(options.get("reflect")),
            schema=options.get("schema"),
            max_limit=options.get("max_limit"),
            backend=config.backend,
            version_attribute=config.version_attribute,
            change_feed=options.get("change_feed", False),
            idempotency_keys=options.get("idempotency_keys", True),
            **extra,
        )
    except sa.exc.ArgumentError as error:
        # Said without the URL itself: a URL may carry a password.
        raise ConfigurationError(
            f"BACKENDS[{config.backend!r}]: the sqlalchemy store cannot use its settings: {error}"
        ) from error


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(
        "SQLALCHEMY_URL",
        None,
        "Database URL of sqlalchemy-store backends that do not set 'url' "
        f"(default {DEFAULT_URL}, a file in the working directory).",
    )


@hookimpl
def configure_server(sio: Any, settings: Any, hub: Hub) -> None:
    """Start the change feed of every backend whose store has ``change_feed``."""
    feeds: dict[str, ChangeFeed] = {}
    for name, backend in hub.backends.items():
        for layer in backend.layers:
            if isinstance(layer.fn, SQLAlchemyStore) and layer.fn.change_feed:
                if layer.fn.database.offload:
                    raise ConfigurationError(
                        f"'change_feed' of backend {name!r} needs a cooperative psycopg2: call "
                        "backboneio.runner.monkey_patch() first (backboneio serve does), and "
                        "do not set 'offload'"
                    )
                feeds[name] = ChangeFeed(hub, name, layer.fn)
    if not feeds:
        return
    hub.state["backboneio_sqlalchemy.change_feeds"] = feeds
    for name, feed in feeds.items():
        # Installed before serving begins, so a write made once the server
        # answers is in the outbox; a database still coming up is retried.
        try:
            feed.install()
        except Exception as error:
            if not is_connection_error(error):
                raise
            log.warning("change feed of %r: database unavailable at start-up; retrying", name)
        feed.start()


@hookimpl
def register_stores(register: Callable[..., None]) -> None:
    register(
        "sqlalchemy",
        make_store,
        options=dict(OPTIONS),
        description="Models in a SQLite or PostgreSQL table through SQLAlchemy: JSON "
        "documents, or the columns of an existing table ('model' / 'reflect').",
    )
