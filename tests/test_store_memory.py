"""The memory store: the conformance suite, its own settings, and a query over the network."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from backboneio.stores import MemoryStore, memory
from backboneio.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def make_store(self) -> Callable[..., MemoryStore]:
        def make(id_attribute: str = "id", max_limit: int | None = None) -> MemoryStore:
            return memory(id_attribute=id_attribute, max_limit=max_limit)

        return make
