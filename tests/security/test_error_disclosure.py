"""Errors reveal no stack trace and no secret unless DEBUG is on."""

from __future__ import annotations

import json

import pytest

from tests.security.helpers import SECRET, connect, refusal, token
from tests.support.server import ServerProcess

FAKE_PASSWORD = "hunter2-fake-db-password"
SETTINGS = f"""
import backboneio


def leaky(req, res, next):
    if req.method != "create":
        return next()
    raise RuntimeError("could not connect to postgres://app:{FAKE_PASSWORD}@db/app")


def refusing(req, res, next):
    raise backboneio.Forbidden("Only editors may write")


PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
TOKEN_AUTH_REQUIRED = False  # anonymous clients provoke the errors
BACKENDS = {{
    "leaky": {{"store": "memory", "middleware": [__name__ + ".leaky"]}},
    "refusing": {{"store": "memory", "middleware": [__name__ + ".refusing"]}},
}}
"""


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_exception_is_a_bare_server_error_unless_debug(debug: bool) -> None:
    args = ("--debug",) if debug else ()
    with ServerProcess(SETTINGS, args=args) as srv, connect(srv.url, "leaky") as client:
        error, result = client.sync("create", {"text": "hi"})
        assert result is None
        body = error["error"]
        if debug:
            assert body["name"] == "RuntimeError"
            assert FAKE_PASSWORD in body["message"]
            assert "Traceback" in body["stack"]
        else:
            assert body == {
                "name": "ServerError",
                "message": "Internal server error",
                "status": 500,
            }
            assert FAKE_PASSWORD not in json.dumps(error)
        # the server log keeps the details for the operator either way
        assert FAKE_PASSWORD in srv.log
        # and the socket keeps working
        assert client.ok("read") == []


def test_a_public_error_keeps_its_message_but_no_stack() -> None:
    with ServerProcess(SETTINGS) as srv, connect(srv.url, "refusing") as client:
        error, _ = client.sync("create", {"text": "hi"})
        assert error["error"] == {
            "name": "Forbidden",
            "message": "Only editors may write",
            "status": 403,
        }


def test_a_refused_token_does_not_echo_the_secret_or_the_token() -> None:
    forged = token("a-different-secret-that-is-long-enough-to-be-valid-xx")
    with ServerProcess(SETTINGS) as srv:
        data = refusal(srv.url, "leaky", auth={"token": forged})
        assert data == {"message": "Token signature is invalid"}
        assert SECRET not in json.dumps(data)
