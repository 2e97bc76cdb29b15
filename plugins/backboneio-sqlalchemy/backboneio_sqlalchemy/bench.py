"""A small benchmark of the sqlalchemy store next to the memory store.

    python -m backboneio_sqlalchemy.bench [--postgres URL] [--rows 10000]

or from Python (the lead's bench/ calls this)::

    from backboneio_sqlalchemy.bench import run
    results = run({"sqlite": "sqlite:///tmp/b.sqlite3", "postgres": url}, rows=10_000)

Requests go through a real :class:`backboneio.Backend` (``backend.handle``),
as the server sends them, without the network in between. Each store gets
``rows`` creates, then ``reads`` filtered reads over those rows.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from backboneio.backend import Backend, Request
from backboneio.stores import MemoryStore

from . import dispose_all, store


def query_for(rows: int) -> dict[str, Any]:
    """The filtered read: a range over the middle 60% of the rows, an equality,
    a sort and a page of 50."""
    return {
        "n": {"$gte": rows // 5, "$lt": rows * 4 // 5},
        "group": "even",
        "$sort": {"score": -1},
        "$limit": 50,
    }


@dataclass
class Result:
    store: str
    rows: int
    creates_per_second: float
    filtered_reads_per_second: float
    matched: int


def _request(backend: Backend, method: str, model: dict[str, Any], options: Any = None) -> Any:
    req = Request(method, model, options or {}, backend=backend.name)
    return backend.handle(req)


def measure(name: str, make: Callable[[], Any], *, rows: int, reads: int) -> Result:
    backend = Backend(name).use(make())
    started = time.perf_counter()
    for n in range(rows):
        model = {
            "id": f"m{n:06}",
            "n": n,
            "group": "even" if n % 2 == 0 else "odd",
            "score": (n * 7919) % 1000,
            "title": f"model number {n}",
        }
        _request(backend, "create", model)
    create_seconds = time.perf_counter() - started
    started = time.perf_counter()
    matched, query = 0, query_for(rows)
    for _ in range(reads):
        matched = len(_request(backend, "read", {}, {"data": query}))
    read_seconds = time.perf_counter() - started
    return Result(name, rows, rows / create_seconds, reads / read_seconds, matched)


def run(urls: Mapping[str, str], *, rows: int = 10_000, reads: int = 50) -> list[Result]:
    """Benchmark the memory store and a document table on each of ``urls``."""
    results = [measure("memory", MemoryStore, rows=rows, reads=reads)]
    for name, url in urls.items():
        make = functools.partial(store, url, f"bench_{uuid.uuid4().hex[:8]}")
        results.append(measure(name, make, rows=rows, reads=reads))
    dispose_all()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to include")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        urls = {"sqlite": f"sqlite:///{os.path.join(folder, 'bench.sqlite3')}"}
        if args.postgres:
            urls["postgres"] = args.postgres
        results = run(urls, rows=args.rows, reads=args.reads)
    print(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
