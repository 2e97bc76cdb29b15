"""Presence in Chromium: two pages see each other, and one drops out when it closes.

Real ``backboneio serve`` with the demo's pages, Debian's Chromium through
Playwright; the server-side rules are proved with python-socketio clients in
tests/test_presence.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.proxy import Relay
from tests.support.browser import Context
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

GRACE = 1.0
SETTINGS = f"""
BACKENDS = {{"messages": {{"store": "memory"}}}}
PRESENCE_GRACE = {GRACE}
PRESENCE_MAX_BYTES = 100
"""


@pytest.fixture(scope="module")
def server(node_modules: Path) -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv:
        yield srv


def open_page(ctx: Context, url: str, name: str) -> Any:
    page = ctx.page(url + "/playground")
    page.evaluate(
        """(name) => {
            window.listens = 0;
            Backbone.io.on('listen', () => { listens += 1; });
            Backbone.io.connect({reconnectionDelay: 100, reconnectionDelayMax: 300});
            window.members = Backbone.io.presence('messages', 'lobby');
            window.events = [];
            members.on('add remove change', (model) => events.push(model.get('state').name));
            return members.announce({name});
        }""",
        name,
    )
    return page


def names(page: Any) -> list[str]:
    return sorted(page.evaluate("members.map((m) => m.get('state').name)"))


def test_two_pages_see_each_other_and_one_drops_out_when_it_closes(
    server: ServerProcess, context: Context
) -> None:
    ann = open_page(context, server.url, "ann")
    ann.wait_for_function("members.length === 1 && members.me === members.first().id")
    bob = open_page(context, server.url, "bob")
    bob.wait_for_function("members.length === 2")
    ann.wait_for_function("members.length === 2")
    assert names(ann) == names(bob) == ["ann", "bob"]
    assert ann.evaluate("members.me") != bob.evaluate("members.me")

    # A state update (what the demo's "typing..." is) reaches the other page.
    bob.evaluate("members.announce({name: 'bob', typing: true})")
    ann.wait_for_function("members.some((m) => m.get('state').typing === true)")

    bob.close()
    ann.wait_for_function("members.length === 1", timeout=(GRACE + 5) * 1000)
    assert names(ann) == ["ann"]


def test_an_oversized_state_is_refused_and_the_page_stays_a_member(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url, "cat")
    page.wait_for_function("members.length >= 1 && members.me !== null")
    refused = page.evaluate(
        "members.announce({name: 'x'.repeat(200)}).then(() => null, (e) => e.name)"
    )
    assert refused == "PayloadTooLarge"
    assert page.evaluate("members.get(members.me).get('state').name") == "cat"


def test_the_demo_messages_page_shows_who_is_online_and_who_is_typing(
    server: ServerProcess, context: Context
) -> None:
    room = "?room=presence-demo"
    first = context.page(server.url + "/" + room)
    first.wait_for_function("document.querySelectorAll('#online .member').length === 1")
    second = context.page(server.url + "/" + room)
    second.wait_for_function("document.querySelectorAll('#online .member').length === 2")
    first.wait_for_function("document.querySelectorAll('#online .member').length === 2")
    assert first.locator("#online .me").count() == 1
    assert "(you)" in first.locator("#online .me").inner_text()

    second.fill("#message-input", "hel")  # an input event: typing
    first.wait_for_function("document.querySelector('#online .typing') !== null")
    assert "typing" in first.locator("#online").inner_text()
    assert second.locator("#online .typing").count() == 0  # not shown for oneself
    second.fill("#message-input", "")
    first.wait_for_function("document.querySelector('#online .typing') === null")

    second.close()
    first.wait_for_function(
        "document.querySelectorAll('#online .member').length === 1",
        timeout=(GRACE + 5) * 1000,
    )


def test_a_page_that_reconnects_within_the_grace_period_is_no_leave_for_the_others(
    start_server: Any, context: Context, node_modules: Path
) -> None:
    grace = 5.0
    server = start_server(
        f'BACKENDS = {{"messages": {{"store": "memory"}}}}\nPRESENCE_GRACE = {grace}\n',
        args=("--demo", "--assets", str(node_modules)),
    )
    relay = Relay(server.port)
    try:
        ann = open_page(context, server.url, "ann")
        bob = open_page(context, relay.url, "bob")
        ann.wait_for_function("members.length === 2")
        bob.wait_for_function("members.length === 2 && listens === 1")
        ann.evaluate("events.length = 0")
        relay.cut()
        relay.restore()
        bob.wait_for_function("listens === 2")  # reconnected, listened and re-announced
        bob.wait_for_function("members.length === 2")
        # After the reconnect the page still hears changes (no request is left waiting).
        ann.evaluate("members.announce({name: 'ann', typing: true})")
        bob.wait_for_function("members.some((m) => m.get('state').typing === true)")
        ann.wait_for_timeout((grace + 1) * 1000)  # past the old connection's grace
        assert ann.evaluate("events") == ["ann"]  # its own update, no leave or join of bob
        assert names(ann) == ["ann", "bob"]
    finally:
        relay.close()
