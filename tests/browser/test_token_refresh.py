"""Token refresh in Chromium: a page whose token expires keeps its socket.

The page gets tokens from the test (``page.expose_function``), as it would from
an identity provider; the server is a real ``backboneio serve`` with
backboneio-token-auth. The server-side rules (forged and expired refreshes)
are proved with python-socketio clients in
plugins/backboneio-token-auth/tests/test_token_refresh.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.support.browser import Context
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

SECRET = "browser-token-refresh-secret-" + "b" * 40
SETTINGS = f"""
PLUGINS = ["backboneio-token-auth"]
TOKEN_AUTH_SECRET = {SECRET!r}
BACKENDS = {{"notes": {{"store": "memory"}}}}
"""


def mint(ttl: float) -> str:
    return jwt.encode({"sub": "ann", "exp": int(time.time() + ttl)}, SECRET)


@pytest.fixture(scope="module")
def server(node_modules: Path) -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv:
        yield srv


def open_page(ctx: Context, url: str, token: str, refreshing: bool) -> Any:
    page = ctx.page(url + "/playground")
    page.expose_function("freshToken", lambda: mint(120))
    page.evaluate(
        """([token, refreshing]) => new Promise((resolve, reject) => {
            window.dropped = 0;
            window.refreshed = [];
            Backbone.io.on('disconnect', () => { dropped += 1; });
            Backbone.io.on('refresh', (info) => refreshed.push(info));
            Backbone.io.connect(Object.assign({auth: {token}, reconnection: false},
                refreshing ? {refreshToken: () => window.freshToken(), refreshBefore: 1500} : {}));
            window.notes = new Backbone.Collection([], {backend: 'notes'}).bindBackend();
            notes.fetch().then(() => resolve(), reject);
        })""",
        [token, refreshing],
    )
    return page


def test_a_page_with_refresh_token_stays_connected_past_its_first_exp(
    server: ServerProcess, context: Context
) -> None:
    first = mint(3)
    old_exp = jwt.decode(first, SECRET, algorithms=["HS256"])["exp"]
    page = open_page(context, server.url, first, refreshing=True)
    page.wait_for_function("refreshed.length === 1", timeout=10_000)
    assert page.evaluate("refreshed[0].expiresAt") > old_exp + 60
    time.sleep(max(0.0, old_exp + 1.5 - time.time()))
    assert page.evaluate("dropped") == 0
    page.evaluate("() => { notes.create({text: 'after the first exp'}, {wait: true}); }")
    page.wait_for_function("notes.length === 1 && !notes.first().pending")
    assert page.evaluate("notes.first().get('text')") == "after the first exp"


def test_without_a_refresh_the_page_is_disconnected_at_exp(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url, mint(2), refreshing=False)
    page.wait_for_function("dropped === 1", timeout=10_000)


def test_a_forged_refresh_is_refused_in_the_page_and_the_socket_closes_at_exp(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url, mint(3), refreshing=False)
    forged = jwt.encode({"sub": "ann", "exp": int(time.time() + 120)}, "x" * 48)
    error = page.evaluate(
        "(token) => Backbone.io.refresh(token).then(() => null, (err) => err)", forged
    )
    assert error["name"] == "Unauthorized"
    assert error["message"] == "Token signature is invalid"
    page.wait_for_function("dropped === 1", timeout=10_000)
