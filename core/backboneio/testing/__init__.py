"""Test helpers for plugin and store authors.

* :class:`ServerProcess` (``backboneio.testing.server``): a real ``backboneio
  serve`` on a free port, from a settings dict or settings module text.
* :class:`BackendClient` (``backboneio.testing.client``): a real Socket.IO
  client of one backend that syncs, listens and waits for notifications
  (needs the ``test`` extra: ``pip install "backboneio[test]"``).
* ``backboneio.testing.pytest_plugin``: the same as pytest fixtures
  (``backboneio_server``, ``backboneio_client``...), loaded by pytest
  wherever backboneio is installed. docs/plugin_guide.md shows them.
* :class:`StoreConformance`: the store conformance suite.

Every store, built in or from a plugin, must answer the five sync methods
and the query language the same way. A store plugin proves it by running
this suite against its own store::

    import pytest
    from backboneio.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def make_store(self):
            def make(id_attribute: str = "id", max_limit: int | None = None):
                return MyStore(id_attribute=id_attribute, max_limit=max_limit)
            return make

``make`` returns a fresh, EMPTY store middleware for a new backend each time
it is called. The suite wraps it in a :class:`backboneio.Backend` and sends
real requests with ``backend.handle()``; no server or network is involved.
docs/stores.md describes the contract and the class attributes a store may
set (``supports_max_limit``, ``unstorable_keys``, ``atomic_patch``, ...).

Importing this package imports pytest but registers nothing with it.
"""

from __future__ import annotations

from . import data
from .client import BackendClient, refusal
from .conformance import StoreClient, StoreConformance, assert_json_equal, run_concurrently
from .server import ServerProcess, free_port, settings_source

__all__ = [
    "BackendClient",
    "ServerProcess",
    "StoreClient",
    "StoreConformance",
    "assert_json_equal",
    "data",
    "free_port",
    "refusal",
    "run_concurrently",
    "settings_source",
]
