"""Token refresh on the open socket: ``refresh({token})`` against a real server.

A page that hands the server a new token before ``exp`` stays connected and
keeps its channel; a forged or expired one is refused, and the socket still
closes at the old ``exp``.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from backboneio.testing.client import BackendClient
from backboneio.testing.server import ServerProcess

SECRET = "token-refresh-test-secret-" + "r" * 40
FORGER = "not-the-servers-secret-at-all-" + "f" * 40

WHOAMI = """
def whoami(req, res, next):
    res.end({"identity": req.identity})
"""

SETTINGS = f"""
{WHOAMI}
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
BACKENDS = {{"who": {{"middleware": [__name__ + ".whoami"]}}, "notes": {{"store": "memory"}}}}
"""


def mint(ttl: float = 300, key: str = SECRET, **claims: Any) -> str:
    return jwt.encode({"sub": "ann", "exp": int(time.time() + ttl), **claims}, key)


def gone(client: BackendClient) -> queue.Queue[Any]:
    """Gets an item when the server disconnects the client's namespace."""
    closed: queue.Queue[Any] = queue.Queue()
    client.sio.on("disconnect", lambda *reason: closed.put(reason), namespace=client.namespace)
    return closed


def refresh(client: BackendClient, auth: Any) -> tuple[Any, Any]:
    answer = client.call("refresh", auth)
    return answer[0], answer[1]


def wait_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.time()))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerProcess(SETTINGS) as srv:
        yield srv.url


def test_a_socket_given_a_new_token_stays_connected_past_the_old_exp(server: str) -> None:
    old_exp = int(time.time()) + 2
    with (
        BackendClient(server, "notes", auth={"token": mint(exp=old_exp)}) as page,
        BackendClient(server, "notes", auth={"token": mint()}) as writer,
    ):
        closed = gone(page)
        page.listen("room")
        writer.listen("room")
        error, answer = refresh(page, {"token": mint(ttl=120)})
        assert error is None
        assert answer["expires_at"] > old_exp + 60
        wait_until(old_exp + 1.5)
        assert closed.empty(), "the socket was closed at the old exp"
        # Still the same socket: it writes, and hears on the channel it had.
        page.ok("create", {"text": "after the old exp"})
        note = writer.ok("create", {"text": "heard after the old exp"})
        assert page.wait_synced("create", id=note["id"]) == note


def test_the_refreshed_claims_are_the_identity(server: str) -> None:
    with BackendClient(server, "who", auth={"token": mint(sub="ann", role="reader")}) as page:
        assert page.ok("read")["identity"]["role"] == "reader"
        error, _ = refresh(page, {"token": mint(sub="ann", role="editor")})
        assert error is None
        assert page.ok("read")["identity"]["role"] == "editor"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: mint(ttl=120, key=FORGER), "Token signature is invalid"),
        (lambda: mint(ttl=-30), "Token expired"),
        (lambda: "not.a.token", "Malformed token"),
    ],
    ids=["forged", "expired", "malformed"],
)
def test_a_bad_refresh_is_refused_and_the_socket_closes_at_the_old_exp(
    server: str, token: Any, message: str
) -> None:
    old_exp = int(time.time()) + 2
    with BackendClient(server, "who", auth={"token": mint(exp=old_exp, role="first")}) as page:
        closed = gone(page)
        error, answer = refresh(page, {"token": token()})
        assert answer is None
        assert error["error"]["name"] == "Unauthorized"
        assert error["error"]["status"] == 401
        assert error["error"]["message"] == message
        # Nothing changed: the old identity until the old exp, then closed.
        assert page.ok("read")["identity"]["role"] == "first"
        assert closed.get(timeout=10) is not None
        assert time.time() >= old_exp


def test_a_refresh_without_credentials_is_a_bad_request(server: str) -> None:
    with BackendClient(server, "who", auth={"token": mint()}) as page:
        for auth in ("a-bare-string", None, ["token"]):
            error, _ = refresh(page, auth)
            assert error["error"]["name"] == "BadRequest"
        assert page.ok("read")["identity"]["sub"] == "ann"


def test_a_new_token_must_allow_the_channel_the_socket_listens_on(server: str) -> None:
    with BackendClient(server, "notes", auth={"token": mint(channels=["red"])}) as page:
        assert "error" not in page.listen("red")
        error, _ = refresh(page, {"token": mint(ttl=120, channels=["blue"])})
        assert error["error"]["name"] == "Forbidden"
        # Still on red, with the old token.
        page.ok("create", {"text": "still red"})
        error, _ = refresh(page, {"token": mint(ttl=120, channels=["red", "blue"])})
        assert error is None


def test_a_refresh_without_an_ack_is_answered_with_an_error_event(server: str) -> None:
    with BackendClient(server, "who", auth={"token": mint(role="first")}) as page:
        page.sio.emit("refresh", {"token": mint(role="second")}, namespace=page.namespace)
        refused = page.errors.get(timeout=10)
        assert refused["event"] == "refresh"
        assert page.ok("read")["identity"]["role"] == "first"
