"""backboneio-session-auth against real servers, with cookies made by a real Flask app."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
from backboneio.testing.client import BackendClient
from backboneio.testing.server import ServerProcess
from backboneio_session_auth import session_serializer
from flask import Flask, session
from itsdangerous import TimestampSigner

KEY = "session-auth-test-key"
OLD_KEY = "session-auth-old-key"

# A backend whose reads answer with the identity the server sees.
WHOAMI = """
def whoami(req, res, next):
    res.end({"identity": req.identity})
"""


def settings(**extra: Any) -> str:
    lines = [WHOAMI, 'PLUGINS = ["backboneio-session-auth"]']
    lines += [f"{name} = {value!r}" for name, value in extra.items()]
    lines.append('BACKENDS = {"who": {"middleware": [__name__ + ".whoami"]}}')
    return "\n".join(lines) + "\n"


def flask_cookie(secret_key: str, cookie_name: str = "session", **values: Any) -> str:
    """The session cookie Flask itself sets after ``session.update(values)``."""
    app = Flask("cookie-maker")
    app.secret_key = secret_key
    app.config["SESSION_COOKIE_NAME"] = cookie_name

    @app.post("/set")
    def set_session() -> str:
        session.update(values)
        return "ok"

    client = app.test_client()
    client.post("/set")
    cookie = client.get_cookie(cookie_name)
    assert cookie is not None
    return cookie.value


def identity(url: str, cookie: str | None, name: str = "session") -> Any:
    headers = {"Cookie": f"{name}={cookie}"} if cookie is not None else None
    with BackendClient(url, "who", headers=headers) as client:
        return client.ok("read")["identity"]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerProcess(settings(SESSION_AUTH_SECRET_KEY=KEY)) as srv:
        yield srv.url


def test_the_session_user_is_the_identity(server: str) -> None:
    assert identity(server, flask_cookie(KEY, user="ann")) == "ann"


def test_flask_tagged_values_are_read(server: str) -> None:
    # Flask's tagged JSON (tuples, bytes...) comes back as Flask would load it.
    user = {"id": 7, "roles": ("admin", "editor")}
    assert identity(server, flask_cookie(KEY, user=user)) == {
        "id": 7,
        "roles": ["admin", "editor"],
    }


def test_no_cookie_or_no_user_key_is_anonymous(server: str) -> None:
    assert identity(server, None) is None
    assert identity(server, flask_cookie(KEY, cart=[1, 2])) is None


def test_a_cookie_signed_with_another_key_is_anonymous(server: str) -> None:
    assert identity(server, flask_cookie("some-other-app", user="ann")) is None


def old_cookie(key: str, age: int = 3600, **values: Any) -> str:
    """A session cookie signed ``age`` seconds ago."""

    class OldSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    serializer = session_serializer(key)
    serializer.signer = OldSigner
    return serializer.dumps(values)


def test_a_cookie_older_than_max_age_is_anonymous() -> None:
    with ServerProcess(settings(SESSION_AUTH_SECRET_KEY=KEY, SESSION_AUTH_MAX_AGE=60)) as srv:
        assert identity(srv.url, old_cookie(KEY, user="ann")) is None
        assert identity(srv.url, flask_cookie(KEY, user="ann")) == "ann"


def test_a_connection_is_dropped_when_its_cookie_reaches_max_age() -> None:
    writer_settings = settings(SESSION_AUTH_SECRET_KEY=KEY, SESSION_AUTH_MAX_AGE=3)
    with ServerProcess(writer_settings) as srv:
        # Signed one second ago with a three-second max age: two seconds left,
        # room for the connect and the read on a loaded machine.
        cookie = old_cookie(KEY, age=1, user="ann")
        with BackendClient(srv.url, "who", headers={"Cookie": f"session={cookie}"}) as ann:
            assert ann.ok("read")["identity"] == "ann"
            dropped = threading.Event()
            ann.sio.on("disconnect", lambda *reason: dropped.set(), namespace="/who")
            assert dropped.wait(10), "the socket outlived its session cookie"


def test_refuse_turns_a_bad_cookie_into_a_connect_error() -> None:
    text = settings(SESSION_AUTH_SECRET_KEY=KEY, SESSION_AUTH_INVALID_COOKIE="refuse")
    with ServerProcess(text) as srv:
        errors: list[Any] = []
        sio = socketio.Client(reconnection=False)
        sio.on("connect_error", lambda data: errors.append(data), namespace="/who")
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(
                srv.url,
                namespaces=["/who"],
                transports=["websocket"],
                headers={"Cookie": f"session={flask_cookie('wrong', user='ann')}"},
            )
        assert errors == [{"message": "Invalid or expired session cookie; log in again"}]
        # no cookie at all is still anonymous, not refused
        assert identity(srv.url, None) is None


def test_cookie_name_identity_key_and_fallback_keys_are_settings() -> None:
    text = settings(
        SESSION_AUTH_SECRET_KEY=KEY,
        SESSION_AUTH_SECRET_KEY_FALLBACKS=[OLD_KEY],
        SESSION_AUTH_COOKIE_NAME="app_session",
        SESSION_AUTH_IDENTITY_KEY="user_id",
    )
    with ServerProcess(text) as srv:
        cookie = flask_cookie(KEY, "app_session", user_id=42)
        assert identity(srv.url, cookie, "app_session") == 42
        # a cookie signed before the key was rotated still logs in
        assert (
            identity(srv.url, flask_cookie(OLD_KEY, "app_session", user_id=43), "app_session") == 43
        )
        # the default name is not read any more
        assert identity(srv.url, cookie, "session") is None


def start_fails(text: str) -> str:
    srv = ServerProcess(text)
    with pytest.raises(RuntimeError) as failed:
        srv.start()
    return str(failed.value)


def test_enabled_without_a_secret_key_stops_start_up() -> None:
    log = start_fails(settings())
    assert "configuration error" in log
    assert "SESSION_AUTH_SECRET_KEY" in log


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_AUTH_MAX_AGE", "a month"),
        ("SESSION_AUTH_INVALID_COOKIE", "ignore"),
        ("SESSION_AUTH_COOKIE_NAME", ""),
        ("SESSION_AUTH_SECRET_KEY_FALLBACKS", "old-key"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_setting(name: str, value: Any) -> None:
    log = start_fails(settings(SESSION_AUTH_SECRET_KEY=KEY, **{name: value}))
    assert f"configuration error: {name}" in log


def test_installed_but_not_configured_it_stays_out_of_the_way() -> None:
    # Every installed plugin is enabled when PLUGINS is not set; without any
    # SESSION_AUTH_* setting this one must not stop the server.
    text = WHOAMI + 'BACKENDS = {"who": {"middleware": [__name__ + ".whoami"]}}\n'
    with ServerProcess(text) as srv:
        assert identity(srv.url, flask_cookie(KEY, user="ann")) is None
