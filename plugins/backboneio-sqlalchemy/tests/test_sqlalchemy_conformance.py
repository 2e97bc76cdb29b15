"""The core's store conformance suite, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from backboneio.testing import StoreConformance


class TestSQLiteConformance(StoreConformance):
    @pytest.fixture
    def make_store(self, sqlite_make_store: Any) -> Any:
        return sqlite_make_store


@pytest.mark.postgres
class TestPostgresConformance(StoreConformance):
    @pytest.fixture
    def make_store(self, postgres_make_store: Any) -> Any:
        return postgres_make_store
