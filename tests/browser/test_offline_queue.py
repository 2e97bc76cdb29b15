"""Writes made offline in Chromium: queued, marked pending, sent once each, in order.

The page that goes offline reaches the server through a
:class:`~tests.browser.proxy.Relay` the test cuts (the server and its change
log stay up); another page, connected directly, is the other window. The
exactly-once test kills the server between the store's write and the answer,
and needs the server's idempotency keys (docs/protocol.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.proxy import Relay
from tests.support.browser import Context
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

SETTINGS = """
BACKENDS = {
    "notes": {"store": "memory", "versioned": True},
    "messages": {"store": "memory"},
    "outbox": {"store": "memory"},
    "drafts": {"store": "memory", "versioned": True},
}
"""
FAST = "{reconnectionDelay: 100, reconnectionDelayMax: 300}"

# A bound collection `list` and what the page saw of it: notifications
# (method, text), pending marks (cid, pending) and errors (name, current).
SETUP = """([backend, options]) => new Promise((resolve, reject) => {
    Backbone.io.connect(Object.assign({reconnectionDelay: 100, reconnectionDelayMax: 300},
                                      options || {}));
    window.heard = [];
    window.marks = [];
    window.errors = [];
    window.listens = 0;
    window.dropped = false;
    Backbone.io.on('listen', () => { listens += 1; });
    Backbone.io.on('disconnect', () => { dropped = true; });
    window.list = new Backbone.Collection([], {backend}).bindBackend();
    list.on('all', (name, model) => {
        if (name.startsWith('backend:') && name !== 'backend:resync') {
            heard.push([name.slice(8), model.text || model.title]);
        }
    });
    list.on('pending', (model, pending) => marks.push([model.cid, pending]));
    list.on('error', (model, err) => errors.push([err.name, err.current || null]));
    window.stored = () => new Backbone.Collection([], {backend}).fetch();
    list.fetch().then(() => resolve(), reject);
})"""


@pytest.fixture(scope="module")
def server(node_modules: Path) -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv:
        yield srv


def open_page(ctx: Context, url: str, backend: Any, options: Any = None) -> Any:
    page = ctx.page(url + "/playground")
    page.evaluate(SETUP, [backend, options])
    page.wait_for_function("listens >= 1")
    return page


def go_offline(relay: Relay, page: Any) -> None:
    page.evaluate("() => { window.dropped = false; }")
    relay.cut()
    page.wait_for_function("window.dropped === true")


def test_writes_made_offline_are_applied_once_each_in_order_and_others_see_each_once(
    server: ServerProcess, context: Context
) -> None:
    room = {"name": "outbox", "channel": "offline-queue"}
    with Relay(server.port) as relay:
        away = open_page(context, relay.url, room)
        other = open_page(context, server.url, room)
        go_offline(relay, away)
        away.evaluate(
            """() => {
                for (let i = 0; i < 5; i += 1) list.create({text: 'offline ' + i, n: i});
                list.findWhere({n: 0}).save({text: 'offline 0, edited'});
            }"""
        )
        assert away.evaluate("list.filter((m) => m.pending).length") == 5
        assert away.evaluate("Backbone.io.pendingWrites().length") == 6
        time.sleep(1.0)  # reconnect attempts fail meanwhile; nothing may be lost or sent
        assert other.evaluate("heard") == []
        assert away.evaluate("errors") == []
        relay.restore()

        away.wait_for_function("Backbone.io.pendingWrites().length === 0", timeout=15_000)
        other.wait_for_function("heard.length >= 6")
        other.wait_for_timeout(300)  # a repeat would arrive about now
        expected = [["create", f"offline {i}"] for i in range(5)]
        expected.append(["update", "offline 0, edited"])
        assert other.evaluate("heard") == expected

        stored = other.evaluate("stored()")
        assert sorted((m["n"], m["text"]) for m in stored) == [
            (0, "offline 0, edited"),
            *((i, f"offline {i}") for i in range(1, 5)),
        ]
        assert sorted(away.evaluate("list.pluck('id')")) == sorted(m["id"] for m in stored)
        # Each model was marked once and cleared once; none is pending now.
        marks: dict[str, list[bool]] = {}
        for cid, pending in away.evaluate("marks"):
            marks.setdefault(cid, []).append(pending)
        assert list(marks.values()) == [[True, False]] * 5
        assert away.evaluate("list.filter((m) => m.pending).length") == 0
        assert away.evaluate("errors") == []


def test_the_demo_shows_sending_for_a_message_typed_offline_then_clears_it(
    server: ServerProcess, context: Context
) -> None:
    with Relay(server.port) as relay:
        away = context.page(relay.url + "/?room=queue-demo")
        other = context.page(server.url + "/?room=queue-demo")
        for page in (away, other):
            page.wait_for_selector("#status.live")
        away.evaluate(
            "() => { window.dropped = false;"
            " Backbone.io.once('disconnect', () => { window.dropped = true; }); }"
        )
        relay.cut()
        away.wait_for_function("window.dropped === true")

        away.fill("#message-input", "Typed on the train")
        away.press("#message-input", "Enter")
        pending = away.locator("#message-list li.pending")
        pending.wait_for()
        assert pending.locator(".pending-mark").text_content() == "sending…"
        assert pending.locator(".text").text_content() == "Typed on the train"
        relay.restore()

        away.locator("#message-list li.pending").wait_for(state="detached", timeout=15_000)
        other.locator("#message-list li").first.wait_for()
        other.wait_for_timeout(300)  # a repeat would arrive about now
        assert other.locator("#message-list .text").all_text_contents() == ["Typed on the train"]
        assert away.locator("#message-list .text").all_text_contents() == ["Typed on the train"]
        assert away.locator(".pending-mark").count() == 0


def test_a_conflicting_save_shows_the_servers_copy(server: ServerProcess, context: Context) -> None:
    room = {"name": "notes", "channel": "conflict"}
    mine = open_page(context, server.url, room, {"onConflict": "server"})
    theirs = open_page(context, server.url, room)
    theirs.evaluate("() => list.create({title: 'draft'}, {wait: true})")
    mine.wait_for_function("list.length === 1")
    # A copy read before their save, not bound: it hears nothing of it.
    mine.evaluate(
        """() => { window.copy = new Backbone.Model({id: list.first().id},
                                                  {backend: {name: 'notes', channel: 'conflict'}});
                   copy.on('error', (m, err) => errors.push([err.name, err.current]));
                   return copy.fetch(); }"""
    )
    theirs.evaluate("() => list.first().save({title: 'theirs'}, {wait: true})")
    mine.evaluate("() => { copy.save({title: 'mine'}); }")  # optimistic: shows 'mine' at once
    mine.wait_for_function("errors.length === 1")
    [[name, current]] = mine.evaluate("errors")
    assert name == "Conflict"
    assert current["title"] == "theirs"
    assert current["_version"] == 2
    # onConflict: 'server': the page now shows the stored copy, not its refused edit.
    assert mine.evaluate("copy.toJSON()") == current
    assert mine.evaluate("copy.pending") is False
    assert [m["title"] for m in theirs.evaluate("stored()")] == ["theirs"]


def test_an_edit_made_offline_over_a_newer_version_ends_on_the_servers_copy(
    server: ServerProcess, context: Context
) -> None:
    room = {"name": "drafts", "channel": "offline-conflict"}
    with Relay(server.port) as relay:
        mine = open_page(context, relay.url, room, {"onConflict": "server"})
        theirs = open_page(context, server.url, room)
        theirs.evaluate("() => list.create({title: 'draft'}, {wait: true})")
        mine.wait_for_function("list.length === 1")
        go_offline(relay, mine)
        mine.evaluate("() => { list.first().save({title: 'mine, offline'}); }")
        assert mine.evaluate("list.first().pending") is True
        theirs.evaluate("() => list.first().save({title: 'theirs'}, {wait: true})")
        relay.restore()

        mine.wait_for_function("errors.length === 1", timeout=15_000)
        [[name, current]] = mine.evaluate("errors")
        assert name == "Conflict"
        assert current["title"] == "theirs"
        assert mine.evaluate("list.first().toJSON()") == current
        assert mine.evaluate("list.first().pending") is False
        assert [m["title"] for m in theirs.evaluate("stored()")] == ["theirs"]


CRASHING = """
import os

_MARK = {mark!r}


def crash_after_the_store(req, res, next):
    # The store has written (and committed) when next() returns; the process
    # dies before the hub can answer: the client never hears the result.
    next()
    if req.method == "create" and not os.path.exists(_MARK):
        open(_MARK, "w").close()
        os._exit(3)


BACKENDS = {{
    "orders": {{
        "store": "sqlalchemy",
        "url": "sqlite:///{db}",
        "middleware": [__name__ + ".crash_after_the_store"],
    }},
}}
"""


def test_a_write_whose_answer_died_with_the_server_is_applied_once_after_the_restart(
    node_modules: Path, context: Context, tmp_path: Path
) -> None:
    settings = CRASHING.format(mark=str(tmp_path / "crashed"), db=tmp_path / "orders.sqlite3")
    with ServerProcess(settings, args=("--demo", "--assets", str(node_modules))) as srv:
        payer = open_page(context, srv.url, "orders")
        other = open_page(context, srv.url, "orders")
        payer.evaluate("() => { list.create({text: 'pay once'}); }")
        payer.wait_for_function("window.dropped === true")
        assert (tmp_path / "crashed").exists()
        assert payer.evaluate("Backbone.io.pendingWrites().length") == 1
        srv.restart()

        payer.wait_for_function("Backbone.io.pendingWrites().length === 0", timeout=20_000)
        assert payer.evaluate("errors") == []
        stored = payer.evaluate("stored()")
        assert [m["text"] for m in stored] == ["pay once"]
        assert payer.evaluate("list.pluck('id')") == [stored[0]["id"]]
        # The other window refetches after the restart (a new history) and
        # holds the order once.
        other.wait_for_function("list.length >= 1", timeout=20_000)
        other.wait_for_timeout(300)
        assert other.evaluate("list.pluck('text')") == ["pay once"]
