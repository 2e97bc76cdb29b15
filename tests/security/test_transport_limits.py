"""CORS origins and the message size limit, over real connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.security.helpers import connect, reason, refusal
from tests.support.server import ServerProcess

CORS_SETTINGS = """
CORS_ALLOWED_ORIGINS = ["http://app.test"]
MAX_MESSAGE_SIZE = 2000
BACKENDS = {"messages": {"store": "memory"}}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerProcess(CORS_SETTINGS) as srv:
        yield srv.url


def test_an_allowed_origin_connects(server: str) -> None:
    assert refusal(server, "messages", origin="http://app.test") is None


def test_another_origin_is_refused(server: str) -> None:
    assert reason(server, "messages", origin="http://evil.test").startswith("engine.io refused")


def test_the_servers_own_origin_connects(server: str) -> None:
    # websocket-client sends the server's own address as Origin by default.
    assert refusal(server, "messages") is None


def test_polling_handshakes_check_the_origin_too(server: str) -> None:
    handshake = server + "/socket.io/?EIO=4&transport=polling"
    evil = requests.get(handshake, headers={"Origin": "http://evil.test"}, timeout=10)
    assert evil.status_code == 400
    assert "Access-Control-Allow-Origin" not in evil.headers
    good = requests.get(handshake, headers={"Origin": "http://app.test"}, timeout=10)
    assert good.status_code == 200
    assert good.headers["Access-Control-Allow-Origin"] == "http://app.test"


def test_without_the_setting_only_the_same_origin_connects() -> None:
    with ServerProcess('BACKENDS = {"messages": {"store": "memory"}}') as srv:
        assert refusal(srv.url, "messages") is None
        assert reason(srv.url, "messages", origin="http://evil.test").startswith(
            "engine.io refused"
        )


def test_an_oversized_message_gets_an_error_and_the_socket_stays_usable(server: str) -> None:
    with connect(server, "messages") as client:
        error, result = client.sync("create", {"text": "x" * 5000})
        assert result is None
        assert error["error"]["name"] == "PayloadTooLarge"
        assert error["error"]["status"] == 413
        small = client.ok("create", {"text": "small"})
        assert client.ok("read") == [small]
