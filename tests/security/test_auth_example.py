"""The auth example (examples/auth/app.py) over the network: Flask login, then the socket.

A real browser-like login with ``requests`` yields the real session cookie,
which a real Socket.IO client then sends with its handshake.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from itsdangerous import URLSafeTimedSerializer

from tests.security.helpers import connect, refusal
from tests.support.browser import Context
from tests.support.server import ROOT, free_port

EXAMPLE = ROOT / "examples" / "auth" / "app.py"
WRITE_ERROR_STATUS = 401


@contextlib.contextmanager
def example_process(*args: str) -> Iterator[str]:
    """Run examples/auth/app.py on a free port until the block ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                requests.get(url + "/", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    raise RuntimeError(f"the auth example did not start:\n{out}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def example() -> Iterator[str]:
    with example_process() as url:
        yield url


def log_in(url: str, user: str, password: str) -> str | None:
    """Log in through the Flask form; the session cookie value, or None."""
    with requests.Session() as http:
        answer = http.post(
            url + "/login", data={"username": user, "password": password}, allow_redirects=False
        )
        assert answer.status_code == 302
        return http.cookies.get("session")


def cookie_header(value: str) -> dict[str, str]:
    return {"Cookie": f"session={value}"}


def test_the_page_offers_a_login_and_loads_the_client_script(example: str) -> None:
    page = requests.get(example + "/").text
    assert 'action="/login"' in page
    assert '<script src="/backbone.io.js"></script>' in page
    assert requests.get(example + "/backbone.io.js").status_code == 200


def test_a_logged_in_user_sends_and_is_the_author(example: str) -> None:
    cookie = log_in(example, "alice", "alice-password")
    assert cookie
    page = requests.get(example + "/", headers=cookie_header(cookie)).text
    assert "Logged in as <b>alice</b>" in page
    with (
        connect(example, "messages") as reader,
        connect(example, "messages", headers=cookie_header(cookie)) as alice,
    ):
        reader.listen()
        # The author the browser claims is overwritten by the one the cookie proves.
        sent = alice.ok("create", {"text": "hello", "author": "mallory"})
        assert sent["author"] == "alice"
        assert reader.next_synced() == ("create", sent)


def test_a_visitor_reads_but_cannot_send(example: str) -> None:
    cookie = log_in(example, "bob", "bob-password")
    assert cookie
    with connect(example, "messages", headers=cookie_header(cookie)) as bob:
        sent = bob.ok("create", {"text": "from bob"})
    with connect(example, "messages") as visitor:
        error, result = visitor.sync("create", {"text": "anonymous"})
        assert result is None
        assert error["error"]["name"] == "Unauthorized"
        assert error["error"]["status"] == WRITE_ERROR_STATUS
        assert sent in visitor.ok("read")
        assert all(m["text"] != "anonymous" for m in visitor.ok("read"))


def test_only_the_author_may_change_or_delete_a_message(example: str) -> None:
    alice_cookie = log_in(example, "alice", "alice-password")
    bob_cookie = log_in(example, "bob", "bob-password")
    assert alice_cookie
    assert bob_cookie
    with (
        connect(example, "messages", headers=cookie_header(alice_cookie)) as alice,
        connect(example, "messages", headers=cookie_header(bob_cookie)) as bob,
    ):
        original = alice.ok("create", {"text": "alice wrote this"})
        attempts = [
            ("update", {**original, "text": "bob rewrote it", "author": "bob"}),
            ("update", {**original, "text": "alice says something else"}),
            ("patch", {"id": original["id"], "text": "bob rewrote it"}),
            ("patch", {"id": original["id"], "author": "bob"}),
            ("delete", {"id": original["id"]}),
        ]
        for method, model in attempts:
            error, result = bob.sync(method, model)
            assert result is None, (method, model)
            assert error["error"]["name"] == "Forbidden", (method, model)
            assert error["error"]["status"] == 403
        assert bob.ok("read", {"id": original["id"]}) == original

        # Her own edits pass, and cannot hand the message to someone else.
        edited = alice.ok("patch", {"id": original["id"], "text": "edited", "author": "bob"})
        assert edited == {**original, "text": "edited"}
        replaced = alice.ok("update", {"id": original["id"], "text": "v3", "author": "bob"})
        assert replaced == {**original, "text": "v3"}
        assert alice.ok("delete", {"id": original["id"]}) == replaced
        error, _ = alice.sync("patch", {"id": original["id"], "text": "gone"})
        assert error["error"]["name"] == "NotFound"


def test_a_wrong_password_gets_no_session(example: str) -> None:
    assert log_in(example, "alice", "not-her-password") is None


def tampered(cookie: str) -> str:
    """The same signature on a payload that now says the user is bob."""
    payload, timestamp, signature = cookie.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["user"] = "bob"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{forged}.{timestamp}.{signature}"


def signed_with_another_key(user: str) -> str:
    # Built the way Flask builds it, only with a key the server does not have.
    serializer = URLSafeTimedSerializer(
        "not-the-example-key", salt="cookie-session", signer_kwargs={"key_derivation": "hmac"}
    )
    return serializer.dumps({"user": user})


@pytest.mark.parametrize("forge", ["tampered", "another key", "garbage"])
def test_a_forged_cookie_is_treated_as_anonymous(example: str, forge: str) -> None:
    cookie = log_in(example, "alice", "alice-password")
    assert cookie
    bad = {
        "tampered": lambda: tampered(cookie),
        "another key": lambda: signed_with_another_key("alice"),
        "garbage": lambda: "not.a.cookie",
    }[forge]()
    # Like Flask itself, a cookie that does not verify means "not logged in":
    # the socket connects, can read, and cannot write.
    assert refusal(example, "messages", headers=cookie_header(bad)) is None
    with connect(example, "messages", headers=cookie_header(bad)) as forger:
        error, _ = forger.sync("create", {"text": "forged"})
        assert error["error"]["name"] == "Unauthorized"
        assert isinstance(forger.ok("read"), list)


# -- in a real browser ------------------------------------------------------


@pytest.mark.browser
def test_in_a_browser_visitors_read_live_and_only_logged_in_users_send(
    node_modules: Path, browser: Any, context: Any, request: pytest.FixtureRequest
) -> None:
    def request_cleanup(ctx: Context) -> None:
        request.addfinalizer(ctx.close)

    with example_process("--assets", str(node_modules)) as url:
        visitor = context.page(url + "/")
        visitor.fill("#text", "anonymous try")
        visitor.click("#send button")
        visitor.wait_for_function(
            "document.getElementById('status').textContent.includes('Log in to create')"
        )

        alice_context = Context(browser)  # her own cookie jar, loopback only too
        alice = alice_context.page(url + "/")
        request_cleanup(alice_context)
        alice.fill("input[name=username]", "alice")
        alice.fill("input[name=password]", "alice-password")
        alice.click("form[action='/login'] button")
        alice.wait_for_selector("text=Logged in as")
        alice.fill("#text", "hello from the browser")
        alice.click("#send button")
        alice.wait_for_selector("#messages li")
        assert alice.locator("#messages li").all_text_contents() == ["alicehello from the browser"]

        # The visitor's page hears it without reloading, and never saw its own try stored.
        visitor.wait_for_selector("#messages li")
        assert visitor.locator("#messages li").all_text_contents() == [
            "alicehello from the browser"
        ]
