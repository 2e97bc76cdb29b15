"""The store conformance suite, run against the redis store on a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from backboneio.testing import StoreConformance
from backboneio_redis import RedisStore, make_store

pytestmark = pytest.mark.redis


class TestRedisStore(StoreConformance):
    # redis-py's pool is thread-safe; real threads make the version races
    # overlap in Redis, where green threads on unpatched sockets would take turns.
    version_threads = "os"

    @pytest.fixture
    def make_store(self, redis_server: Any) -> Iterator[Callable[..., RedisStore]]:
        made: list[RedisStore] = []

        def make(
            id_attribute: str = "id",
            max_limit: int | None = None,
            version_attribute: str | None = None,
        ) -> RedisStore:
            # A new key prefix per store: nothing shared with earlier stores.
            store = make_store(
                redis_server.url,
                prefix=f"conformance:{uuid.uuid4().hex}",
                id_attribute=id_attribute,
                max_limit=max_limit,
                version_attribute=version_attribute,
            )
            made.append(store)
            return store

        yield make
        for store in made:
            store.clear()
            store.client.close()
