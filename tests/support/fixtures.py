"""Fixtures for every test in the repo (core and plugins): real servers and clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.client import BackendClient
from tests.support.server import ServerProcess


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(settings_text, args=(), env={})``: a running server, stopped afterwards."""
    started: list[ServerProcess] = []

    def start(settings: str | None = None, **kwargs: Any) -> ServerProcess:
        srv = ServerProcess(settings, **kwargs)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.__exit__(None, None, None)


@pytest.fixture
def connect() -> Iterator[Callable[..., BackendClient]]:
    """``connect(url, backend, **kwargs)``: a connected client, disconnected after the test."""
    clients: list[BackendClient] = []

    def make(url: str, backend: str, **kwargs: Any) -> BackendClient:
        client = BackendClient(url, backend, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
