"""A store benchmark: a filtered, sorted, limited read over many rows.

    from backboneio.testing.bench import filtered_read
    result = filtered_read(lambda: memory(), rows=10_000)
    print(result.as_dict())

The rows and the query are fixed, so numbers from different stores compare.
Requests go through a real :class:`~backboneio.Backend`, as the conformance
suite's do; no server is involved.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..backend import Middleware
from .conformance import StoreClient

#: The read being timed: two of ten groups, upper half of scores, top 50.
QUERY: dict[str, Any] = {
    "group": {"$in": ["g3", "g7"]},
    "score": {"$gte": 500},
    "$sort": {"score": -1, "name": 1},
    "$limit": 50,
}


def row(i: int) -> dict[str, Any]:
    """Row ``i`` of the benchmark data (its id is ``r00000i``)."""
    return {
        "id": f"r{i:06}",
        "name": f"row {i:06}",
        "group": f"g{i % 10}",
        # A multiplicative hash spreads scores 0..999 evenly and reproducibly.
        "score": (i * 7919) % 1000,
        "active": i % 3 == 0,
        "tags": ["bench", f"t{i % 7}"],
        "meta": {"n": i, "half": i / 2},
    }


def expected_matches(rows: int) -> int:
    """How many rows :data:`QUERY` matches before its ``$limit``."""
    return sum(1 for i in range(rows) if i % 10 in (3, 7) and (i * 7919) % 1000 >= 500)


@dataclass(frozen=True)
class BenchResult:
    rows: int
    reads: int
    matched: int  # rows the filter matches before $limit
    answered: int  # models one read answers
    load_seconds: float  # creating every row, one create each
    read_seconds_median: float
    read_seconds_min: float
    read_seconds_max: float

    @property
    def reads_per_second(self) -> float:
        return 1 / self.read_seconds_median if self.read_seconds_median else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reads_per_second": self.reads_per_second}


def filtered_read(
    make_store: Callable[[], Middleware],
    *,
    rows: int = 10_000,
    reads: int = 20,
    query: dict[str, Any] | None = None,
) -> BenchResult:
    """Fill a fresh store from ``make_store()`` with ``rows`` rows and time ``reads`` reads.

    ``make_store`` takes no arguments and returns an empty store middleware
    using the ``id`` attribute and no ``max_limit`` (e.g. the conformance
    fixture's ``make``). Raises AssertionError if the store answers the
    default query wrongly, so a fast but wrong store cannot win.
    """
    client = StoreClient(make_store(), timeout=None)
    started = time.perf_counter()
    for i in range(rows):
        client.create(row(i))
    load_seconds = time.perf_counter() - started

    query = QUERY if query is None else query
    timings: list[float] = []
    answer: list[Any] = []
    for _ in range(reads):
        started = time.perf_counter()
        answer = client.query(query)
        timings.append(time.perf_counter() - started)

    matched = expected_matches(rows)
    if query is QUERY:
        top = sorted(
            (row(i) for i in range(rows) if i % 10 in (3, 7) and (i * 7919) % 1000 >= 500),
            key=lambda r: (-r["score"], r["name"]),
        )[:50]
        assert answer == top, "the store answered the benchmark query wrongly"
    return BenchResult(
        rows=rows,
        reads=reads,
        matched=matched,
        answered=len(answer),
        load_seconds=load_seconds,
        read_seconds_median=statistics.median(timings) if timings else 0.0,
        read_seconds_min=min(timings, default=0.0),
        read_seconds_max=max(timings, default=0.0),
    )


def main() -> None:  # pragma: no cover - a manual entry point
    from ..stores import memory

    print(filtered_read(memory).as_dict())


if __name__ == "__main__":  # pragma: no cover
    main()
