"""backboneio's pytest plugin: real servers and protocol clients as fixtures.

pytest loads it in every environment where backboneio is installed (entry
point ``backboneio`` in the ``pytest11`` group; ``-p no:backboneio`` turns it
off). It only defines fixtures, all named ``backboneio_*``, and imports the
server and client helpers when a test asks for one of them, so a pytest run
that uses none is unaffected, with or without the ``test`` extra.

``backboneio_settings``
    The settings ``backboneio_server`` starts with: a dict (values must be
    Python literals) or the text of a settings module. The default serves one
    memory backend, ``test``. Override it in a test module or a conftest.py.
``backboneio_server``
    A running ``backboneio serve`` (a :class:`~backboneio.testing.server.ServerProcess`)
    with ``backboneio_settings``, on a free port, stopped after the test.
``backboneio_start_server``
    ``start(settings=None, **options)``: another running server, stopped after
    the test. ``options`` are ServerProcess's (``args``, ``env``, ``pythonpath``...).
``backboneio_client``
    ``connect(backend, *, server=None, **options)``: a connected
    :class:`~backboneio.testing.client.BackendClient`, closed after the test.
    ``server`` is a ServerProcess or a URL; by default ``backboneio_server``.

When a test fails, the output of every server it started is added to the report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported when a fixture runs, never when pytest loads the plugin
    import pluggy

    from .client import BackendClient
    from .server import ServerProcess, SettingsLike

_SERVERS = "_backboneio_servers"


@pytest.fixture
def backboneio_settings() -> SettingsLike:
    """The settings of ``backboneio_server``; override this fixture to choose your own."""
    return {"BACKENDS": {"test": {"store": "memory"}}}


@pytest.fixture
def backboneio_start_server(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., ServerProcess]]:
    """``start(settings=None, **options)``: a running server, stopped after the test."""
    from .server import ServerProcess

    started: list[ServerProcess] = []
    setattr(request.node, _SERVERS, started)

    def start(settings: SettingsLike = None, **options: Any) -> ServerProcess:
        server = ServerProcess(settings, **options)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def backboneio_server(
    backboneio_start_server: Callable[..., ServerProcess], backboneio_settings: SettingsLike
) -> ServerProcess:
    """A running ``backboneio serve`` with ``backboneio_settings``, stopped after the test."""
    return backboneio_start_server(backboneio_settings)


@pytest.fixture
def backboneio_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., BackendClient]]:
    """``connect(backend, *, server=None, **options)``: a connected client, closed afterwards."""
    from .client import BackendClient, require_client_extra

    problem = None
    try:
        require_client_extra()
    except RuntimeError as exc:
        problem = str(exc)
    if problem:  # outside the except block: one line in the report, no chained traceback
        pytest.fail(problem, pytrace=False)
    clients: list[BackendClient] = []

    def connect(backend: str, *, server: Any = None, **options: Any) -> BackendClient:
        if server is None:
            server = request.getfixturevalue("backboneio_server")
        url = server if isinstance(server, str) else server.url
        client = BackendClient(url, backend, **options)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for server in getattr(item, _SERVERS, ()):
        report.sections.append((f"backboneio server {server.url}", server.log or "(no output)"))
