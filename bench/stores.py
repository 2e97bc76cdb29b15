"""Creates per second and a 10,000-row filtered read, for every store, in one run.

Stores are built the way `backboneio serve` builds them (the ``register_stores``
hook and a StoreConfig), each for a fresh backend, and driven through a real
Backend by ``backboneio.testing.bench.filtered_read``. Ratios are to the memory
store measured in the same run.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from backboneio.app import store_types
from backboneio.backend import Middleware
from backboneio.plugins import get_plugin_manager
from backboneio.settings import Settings
from backboneio.stores import StoreConfig
from backboneio.testing.bench import filtered_read


def store_maker(name: str, **options: Any) -> Callable[[], Middleware]:
    store_type = store_types(get_plugin_manager())[name]

    def make() -> Middleware:
        backend = f"bench_{uuid.uuid4().hex[:8]}"
        config = StoreConfig(backend, "id", {**store_type.options, **options}, Settings())
        return store_type.factory(config)

    return make


@contextlib.contextmanager
def redis_url() -> Iterator[str | None]:
    executable = shutil.which("redis-server")
    if executable is None:
        yield None
        return
    from backboneio_redis.testing import RedisServer

    server = RedisServer(executable).start()
    try:
        yield server.url
    finally:
        server.close()


@contextlib.contextmanager
def postgres_url() -> Iterator[str | None]:
    from backboneio_sqlalchemy.testing import PostgresServer, find_binary

    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        yield None
        return
    server = PostgresServer(initdb, pg_ctl)
    server.init()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        server.remove()


def measure(quick: bool = False) -> list[dict[str, Any]]:
    rows = 2_000 if quick else 10_000
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, redis_url() as redis, postgres_url() as postgres:
        candidates: list[tuple[str, Callable[[], Middleware] | None]] = [
            ("memory", store_maker("memory")),
            (
                "sqlalchemy (SQLite file, WAL)",
                store_maker("sqlalchemy", url=f"sqlite:///{Path(tmp, 'bench.sqlite3')}"),
            ),
            (
                "sqlalchemy (PostgreSQL)",
                store_maker("sqlalchemy", url=postgres) if postgres else None,
            ),
            ("redis", store_maker("redis", url=redis) if redis else None),
        ]
        for name, make in candidates:
            if make is None:
                results.append(
                    {
                        "store": name,
                        "rows": rows,
                        "creates/s": "not run",
                        "read ms": "-",
                        "creates ratio": "-",
                        "read time ratio": "-",
                    }
                )
                continue
            result = filtered_read(make, rows=rows, reads=10 if quick else 20)
            results.append(
                {
                    "store": name,
                    "rows": rows,
                    "creates/s": rows / result.load_seconds,
                    "read ms": result.read_seconds_median * 1000,
                }
            )
    memory = results[0]
    for r in results:
        if isinstance(r["creates/s"], float):
            r["creates ratio"] = r["creates/s"] / memory["creates/s"]
            r["read time ratio"] = r["read ms"] / memory["read ms"]
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    out = ["### Stores: creates and a filtered read, ratios to the memory store", ""]
    columns = list(results[0])
    out.append("| " + " | ".join(columns) + " |")
    out.append("|" + "---|" * len(columns))
    for r in results:
        cells = []
        for c in columns:
            v = r.get(c, "-")
            cells.append(
                f"{v:,.2f}"
                if isinstance(v, float) and v < 100
                else f"{v:,.0f}"
                if isinstance(v, float)
                else str(v)
            )
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
