"""Bearer tokens under attack: forged, tampered, expired, missing, confused algorithms.

Every case is a real client connecting to a real server with
backboneio-token-auth enabled; the assertion is on what the client is told.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import socketio

from tests.security.helpers import (
    OTHER_SECRET,
    SECRET,
    connect,
    disconnects,
    reason,
    refusal,
    rsa_keys,
    token,
)
from tests.support.server import ServerProcess

HS_SETTINGS = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
TOKEN_AUTH_ISSUER = "https://login.test"
TOKEN_AUTH_AUDIENCE = "chat"
TOKEN_AUTH_REQUIRED = True
BACKENDS = {{"messages": {{"store": "memory"}}}}
"""


def valid(**claims: object) -> str:
    return token(iss="https://login.test", aud="chat", **claims)


@pytest.fixture(scope="module")
def hs_server() -> Iterator[str]:
    with ServerProcess(HS_SETTINGS) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def rsa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    private, public = rsa_keys()
    key_file = Path(tmp_path_factory.mktemp("keys")) / "public.pem"
    key_file.write_text(public)
    settings = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_PUBLIC_KEY = {str(key_file)!r}
TOKEN_AUTH_ALGORITHMS = ["RS256"]
TOKEN_AUTH_REQUIRED = False
BACKENDS = {{"messages": {{"store": "memory"}}}}
"""
    with ServerProcess(settings) as srv:
        yield srv.url, private, public


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def hs256(header: dict[str, object], claims: dict[str, object], key: str = SECRET) -> str:
    """A token signed with the right key but a header PyJWT's encode would not write."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def wait_past(deadline: float) -> None:
    while time.time() <= deadline + 0.2:  # wait for the clock, not for the server
        time.sleep(0.1)


def test_a_valid_token_connects_and_writes(hs_server: str) -> None:
    with connect(hs_server, "messages", auth={"token": valid()}) as client:
        assert client.ok("create", {"text": "hi"})["text"] == "hi"


def test_the_authorization_header_works_too(hs_server: str) -> None:
    headers = {"Authorization": f"Bearer {valid()}"}
    with connect(hs_server, "messages", headers=headers) as client:
        assert isinstance(client.ok("read"), list)


def test_a_missing_token_is_refused_when_required(hs_server: str) -> None:
    assert reason(hs_server, "messages") == "Token required"


def test_an_expired_token_is_refused(hs_server: str) -> None:
    assert reason(hs_server, "messages", auth={"token": valid(ttl=-60)}) == "Token expired"


def test_a_token_signed_with_another_secret_is_refused(hs_server: str) -> None:
    forged = token(OTHER_SECRET, iss="https://login.test", aud="chat")
    assert reason(hs_server, "messages", auth={"token": forged}) == "Token signature is invalid"


def test_a_tampered_payload_is_refused(hs_server: str) -> None:
    genuine = valid(sub="alice")
    header, _, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["sub"] = "admin"
    forged = ".".join([header, b64(claims), signature])
    assert reason(hs_server, "messages", auth={"token": forged}) == "Token signature is invalid"


def test_a_wrong_issuer_is_refused(hs_server: str) -> None:
    other = token(iss="https://evil.test", aud="chat")
    assert reason(hs_server, "messages", auth={"token": other}) == "Token has the wrong issuer"


def test_a_wrong_audience_is_refused(hs_server: str) -> None:
    other = token(iss="https://login.test", aud="billing")
    assert reason(hs_server, "messages", auth={"token": other}) == "Token has the wrong audience"


def test_a_token_not_valid_yet_is_refused(hs_server: str) -> None:
    early = valid(nbf=int(time.time()) + 3600)
    assert reason(hs_server, "messages", auth={"token": early}) == "Token not valid yet"


def test_alg_none_is_refused(hs_server: str) -> None:
    unsigned = (
        b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64({"sub": "admin", "iss": "https://login.test", "aud": "chat", "exp": time.time() + 60})
        + "."
    )
    assert reason(hs_server, "messages", auth={"token": unsigned}) == (
        "Token algorithm 'none' is not accepted"
    )


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage_is_refused_as_malformed(hs_server: str, garbage: str) -> None:
    message = reason(hs_server, "messages", auth={"token": garbage})
    assert message in ("Malformed token", "Token required")
    # and the server is still serving
    with connect(hs_server, "messages", auth={"token": valid()}) as client:
        client.ok("read")


def test_a_non_string_token_is_refused(hs_server: str) -> None:
    message = reason(hs_server, "messages", auth={"token": {"sub": "admin"}})
    assert message == "Malformed token: auth.token must be a string"


@pytest.mark.parametrize("exp_type", [int, str])
def test_a_token_that_expires_while_connected_is_disconnected(
    hs_server: str, exp_type: type
) -> None:
    # PyJWT accepts an exp it can turn into an integer, "1767225600" too;
    # the string must expire all the same.
    expires = int(time.time()) + 2
    short = valid(exp=exp_type(expires))
    with (
        connect(hs_server, "messages", auth={"token": short}) as listener,
        connect(hs_server, "messages", auth={"token": valid()}) as writer,
    ):
        gone = disconnects(listener)
        listener.listen("expiry")
        writer.listen("expiry")
        before = writer.ok("create", {"text": "in time"})
        assert listener.next_synced() == ("create", before)
        assert listener.ok("read", {"id": before["id"]}) == before
        # The server ends the socket at exp: it hears nothing more and can send nothing.
        assert gone.get(timeout=10) is not None
        writer.ok("create", {"text": "after expiry"})
        with pytest.raises(socketio.exceptions.BadNamespaceError):
            listener.sync("create", {"text": "too late"})
    with connect(hs_server, "messages", auth={"token": valid()}) as other:
        texts = [m["text"] for m in other.ok("read")]
        assert "after expiry" in texts
        assert "too late" not in texts


def test_a_token_without_exp_is_refused(hs_server: str) -> None:
    forever = jwt.encode({"sub": "alice", "iss": "https://login.test", "aud": "chat"}, SECRET)
    assert reason(hs_server, "messages", auth={"token": forever}) == "Token lacks the 'exp' claim"


def test_an_exp_beyond_any_clock_is_refused(hs_server: str) -> None:
    # An integer PyJWT accepts, but not a time the server could ever wait for.
    endless = valid(exp=10**400)
    assert reason(hs_server, "messages", auth={"token": endless}) == (
        "Token has an invalid 'exp' claim"
    )


def test_a_non_string_key_id_is_malformed_not_a_server_failure(hs_server: str) -> None:
    claims = {"sub": "alice", "iss": "https://login.test", "aud": "chat", "exp": time.time() + 60}
    odd = hs256({"alg": "HS256", "typ": "JWT", "kid": 123}, claims)
    assert reason(hs_server, "messages", auth={"token": odd}) == "Malformed token"


def test_a_long_algorithm_name_is_not_echoed_whole(hs_server: str) -> None:
    claims = {"sub": "alice", "exp": time.time() + 60}
    long_alg = hs256({"alg": "A" * 5000, "typ": "JWT"}, claims)
    message = reason(hs_server, "messages", auth={"token": long_alg})
    assert message.startswith("Token algorithm 'AAAA")
    assert message.endswith("is not accepted")
    assert len(message) < 60


def test_rs256_accepts_a_token_signed_with_the_private_key(
    rsa_server: tuple[str, str, str],
) -> None:
    url, private, _ = rsa_server
    with connect(url, "messages", auth={"token": token(private, "RS256")}) as client:
        client.ok("create", {"text": "signed"})


def test_hs256_signed_with_the_rs256_public_key_is_refused(
    rsa_server: tuple[str, str, str],
) -> None:
    # The classic algorithm-confusion attack: the public key is public, so an
    # attacker can compute an HMAC with it and hope the server verifies with it.
    url, _, public = rsa_server
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64({"sub": "admin", "exp": int(time.time()) + 60})
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(public.encode(), signing_input, hashlib.sha256).digest()
    forged = f"{header}.{payload}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert (
        reason(url, "messages", auth={"token": forged}) == "Token algorithm 'HS256' is not accepted"
    )


def test_rs256_with_another_key_pair_is_refused(rsa_server: tuple[str, str, str]) -> None:
    url, _, _ = rsa_server
    other_private, _ = rsa_keys()
    forged = token(other_private, "RS256")
    assert reason(url, "messages", auth={"token": forged}) == "Token signature is invalid"


def test_without_a_required_token_anonymous_clients_still_connect(
    rsa_server: tuple[str, str, str],
) -> None:
    url, _, _ = rsa_server
    assert refusal(url, "messages") is None
