"""Benchmark: the redis store against the memory store, in one run on one machine.

    python plugins/backboneio-redis/bench_redis.py [--rows 10000] [--reads 20]

Starts its own redis-server (no persistence) on a free loopback port. For
each store: creates per second (one create per request through a
Backend, as the conformance suite sends them) and the median time of three
reads over the rows: the core's benchmark query (filter, sort, limit 50;
``backboneio.testing.bench.QUERY``), a filter with a limit and no sort, and
a filter answering every match (1/10 of the rows).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from backboneio.backend import Middleware
from backboneio.stores import memory
from backboneio.testing import StoreClient
from backboneio.testing.bench import QUERY, row
from backboneio_redis import make_store
from backboneio_redis.testing import RedisServer

READS: dict[str, dict[str, Any]] = {
    "filter+sort+limit50": QUERY,
    "filter+limit50 (no sort)": {"group": "g3", "active": True, "$limit": 50},
    "filter, every match": {"group": "g3"},
}


def measure(make: Callable[[], Middleware], rows: int, reads: int) -> dict[str, Any]:
    client = StoreClient(make(), timeout=None)
    started = time.perf_counter()
    for i in range(rows):
        client.create(row(i))
    load = time.perf_counter() - started
    result: dict[str, Any] = {"creates_per_second": round(rows / load)}
    for name, query in READS.items():
        timings = []
        for _ in range(reads):
            started = time.perf_counter()
            answer = client.query(query)
            timings.append(time.perf_counter() - started)
        result[name] = {
            "median_ms": round(statistics.median(timings) * 1000, 2),
            "answered": len(answer),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--redis-server", default="redis-server", help="redis-server binary")
    args = parser.parse_args()
    with RedisServer(args.redis_server) as server:
        stores: dict[str, Callable[[], Middleware]] = {
            "memory": memory,
            "redis": lambda: make_store(server.url, prefix=f"bench:{uuid.uuid4().hex}"),
        }
        report = {name: measure(make, args.rows, args.reads) for name, make in stores.items()}
    print(json.dumps({"rows": args.rows, "reads": args.reads, **report}, indent=2))


if __name__ == "__main__":
    main()
