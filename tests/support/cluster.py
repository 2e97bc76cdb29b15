"""``pytest --cluster N``: every server a test starts is N processes on one Redis.

Each ``ServerProcess`` the tests make (the repository's and the shipped one)
becomes a :class:`backboneio_redis.testing.ServerCluster`: the same settings,
memory backends on one shared Redis store, the change log on Redis Streams,
and each ``server.url`` naming the next process, so a test's clients are
spread over the processes. Tests that depend on being one process (they kill
it, read its memory, or count its own log lines) are marked
``single_process`` and deselected in this mode.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

_REDIS: list[Any] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        type=int,
        default=0,
        metavar="N",
        help="run every server the tests start as N processes on one Redis (needs redis-server)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "single_process: the test needs one server process (skipped with --cluster)"
    )
    processes = config.getoption("--cluster")
    if not processes:
        return
    from backboneio.testing import server as shipped
    from backboneio.testing.requires import binary
    from backboneio_redis.testing import RedisServer

    from tests.support import server as repo

    redis = RedisServer(binary("redis-server", "apt-get install redis-server")).start()
    _REDIS.append(redis)
    for module in (shipped, repo):
        module.ServerProcess = functools.partial(  # type: ignore[misc,assignment]
            _server, one=module.ServerProcess, redis_url=redis.url, processes=processes
        )


def _server(
    settings: Any = None, *, one: Any, redis_url: str, processes: int, **options: Any
) -> Any:
    from backboneio_redis.testing import ServerCluster

    if options.get("script") is not None:
        return one(settings, **options)  # a program of its own: it is what it is
    return ServerCluster(settings, redis_url=redis_url, processes=processes, server=one, **options)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--cluster"):
        return
    keep = [item for item in items if item.get_closest_marker("single_process") is None]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


def pytest_unconfigure(config: pytest.Config) -> None:
    while _REDIS:
        _REDIS.pop().close()
