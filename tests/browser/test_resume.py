"""Resume in Chromium: a page cut off for a few seconds while another writes.

The reader reaches the server through a :class:`~tests.browser.proxy.Relay`
the test cuts (a network drop the same server process outlives, so its
change log can replay) or through a server that restarts (its memory log
and store are lost: the client must refetch).
"""

from __future__ import annotations

import time
from collections import Counter
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
    "notes": {"store": "memory"},
    "messages": {"store": "memory"},
}
"""
AWAY_SECONDS = 2.5
# Reconnect quickly once the network is back; the defaults wait up to 5 s.
CONNECT = "Backbone.io.connect({reconnectionDelay: 100, reconnectionDelayMax: 300})"

# Page helpers: a bound collection `mirror` with every notification it heard,
# every listen answer, every resync and every read it sent.
READER = """(backend) => new Promise((resolve, reject) => {
    window.heard = [];
    window.listens = [];
    window.resyncs = [];
    window.reads = 0;
    Backbone.io.on('listen', (name, channel, answer, info) => listens.push(info));
    window.mirror = new Backbone.Collection([], {backend}).bindBackend();
    mirror.on('all', (name, target, info) => {
        if (name === 'backend:resync') resyncs.push(info);
        else if (name.startsWith('backend:')) heard.push([name, target.id]);
    });
    mirror.on('request', () => { reads += 1; });
    mirror.fetch().then(() => resolve(), reject);
})"""

WRITER = """() => {
    window.within = (promise, ms = 8000) => Promise.race([promise, new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms))]);
    window.room = new Backbone.Collection([], {backend: {name: 'notes', channel: 'room'}});
    window.lobby = new Backbone.Collection([], {backend: 'notes'});
    window.wrote = [];
    // One write, answered: [event the others hear, id]
    window.write = (collection, action, attrs) => {
        const done = action === 'create'
            ? new Promise((resolve, reject) => collection.create(attrs,
                {wait: true, success: resolve, error: (m, err) => reject(err)}))
            : action === 'patch'
                ? collection.get(attrs.id).save(attrs, {patch: true, wait: true})
                    .then(() => collection.get(attrs.id))
                : action === 'update'
                    ? collection.get(attrs.id).save(attrs, {wait: true})
                        .then(() => collection.get(attrs.id))
                    : new Promise((resolve, reject) => {
                        const model = collection.get(attrs.id);
                        model.destroy({wait: true, success: () => resolve(model),
                                       error: (m, err) => reject(err)});
                    });
        return within(done).then((model) => {
            wrote.push(['backend:' + action, model.id]);
            return model.id;
        });
    };
    window.store = () => within(new Backbone.Collection([], {backend: 'notes'}).fetch());
}"""

# While the reader is away: creates, updates, patches and deletes on the
# room channel and without a channel, which a page in the room hears too.
AWAY_WRITES = """async (count) => {
    for (let i = 0; i < count; i += 1) {
        const collection = i % 3 === 0 ? lobby : room;
        const id = await write(collection, 'create', {n: i, text: 'away ' + i});
        if (i % 4 === 1) await write(collection, 'patch', {id, n: -i});
        if (i % 5 === 2) await write(collection, 'update', {id, text: 'replaced ' + i});
        if (i % 6 === 3) await write(collection, 'delete', {id});
    }
}"""


@pytest.fixture(scope="module")
def server(node_modules: Path) -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv:
        yield srv


def open_page(ctx: Context, url: str) -> Any:
    page = ctx.page(url + "/playground")
    page.evaluate(CONNECT)
    return page


def reader_page(ctx: Context, url: str, backend: Any) -> Any:
    page = open_page(ctx, url)
    page.evaluate(READER, backend)
    page.wait_for_function("listens.length >= 1")
    return page


def writer_page(ctx: Context, url: str) -> Any:
    page = open_page(ctx, url)
    page.evaluate(WRITER)
    return page


def same_models(page: Any, writer: Any) -> tuple[list[Any], list[Any]]:
    def key(model: dict[str, Any]) -> str:
        return str(model["id"])

    mine = sorted(page.evaluate("mirror.toJSON()"), key=key)
    theirs = sorted(writer.evaluate("store()"), key=key)
    return mine, theirs


def watch_disconnect(page: Any) -> None:
    page.evaluate(
        "() => { window.dropped = false;"
        " Backbone.io.once('disconnect', () => { window.dropped = true; }); }"
    )


def away(relay: Relay, reader: Any) -> float:
    # page.evaluate of a promise has no timeout in Playwright: poll a flag instead.
    watch_disconnect(reader)
    relay.cut()
    reader.wait_for_function("window.dropped === true")
    return time.monotonic()


def test_a_page_offline_for_seconds_gets_every_missed_change_once_then_live_ones(
    server: ServerProcess, context: Context
) -> None:
    with Relay(server.port) as relay:
        writer = writer_page(context, server.url)
        writer.evaluate("() => write(room, 'create', {text: 'before'})")
        writer.evaluate("() => write(lobby, 'create', {text: 'before, no channel'})")
        reader = reader_page(context, relay.url, {"name": "notes", "channel": "room"})
        assert reader.evaluate("mirror.length") == 2
        before = len(writer.evaluate("wrote"))

        left = away(relay, reader)
        writer.evaluate(AWAY_WRITES, 24)
        # The page stays away a few seconds, reconnect attempts failing meanwhile.
        time.sleep(max(0.0, AWAY_SECONDS - (time.monotonic() - left)))
        assert reader.evaluate("listens.length") == 1
        relay.restore()

        reader.wait_for_function("listens.length >= 2", timeout=15_000)
        resumed = reader.evaluate("listens[1]")
        missed = writer.evaluate("wrote")[before:]
        assert resumed == {
            "resumed": True,
            "recovered": True,
            "replayed": len(missed),
            "failed": [],
        }

        writer.evaluate("() => write(room, 'create', {text: 'live again'})")
        wrote = writer.evaluate("wrote")[before:]
        reader.wait_for_function("(n) => heard.length >= n", arg=len(wrote))
        reader.wait_for_timeout(200)  # a duplicate would arrive about now
        heard = [tuple(e) for e in reader.evaluate("heard")]
        # Every change once; each model's changes in the order they were made
        # (a page hears two streams, whose replays need not interleave as written).
        assert Counter(heard) == Counter(tuple(e) for e in wrote)
        for model_id in {e[1] for e in wrote}:
            assert [e for e in heard if e[1] == model_id] == [
                tuple(e) for e in wrote if e[1] == model_id
            ]
        assert heard[-1] == tuple(wrote[-1])  # the live one after the replay

        mine, theirs = same_models(reader, writer)
        assert mine == theirs
        assert reader.evaluate("resyncs.length") == 0
        assert reader.evaluate("reads") == 1  # caught up without fetching again


def test_after_a_server_restart_the_page_resyncs_and_ends_equal_to_the_store(
    node_modules: Path, context: Context
) -> None:
    with (
        ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv,
        Relay(srv.port) as relay,
    ):
        writer = writer_page(context, srv.url)
        for text in ("one", "two", "three"):
            writer.evaluate("(text) => write(lobby, 'create', {text})", text)
        reader = reader_page(context, relay.url, "notes")
        assert reader.evaluate("mirror.length") == 3

        away(relay, reader)
        writer.evaluate(
            "() => { window.relistened = false; Backbone.io.once('disconnect', () =>"
            " Backbone.io.once('listen', () => { window.relistened = true; })); }"
        )
        srv.restart()  # the memory store and the memory change log start empty
        writer.wait_for_function("window.relistened === true", timeout=15_000)
        for text in ("after one", "after two"):
            writer.evaluate("(text) => write(room, 'create', {text})", text)
        relay.restore()

        reader.wait_for_function("listens.length >= 2 && resyncs.length >= 1", timeout=15_000)
        resumed = reader.evaluate("listens[1]")
        assert resumed["resumed"] is True
        assert resumed["recovered"] is False
        assert resumed["replayed"] == 0
        assert resumed["failed"]
        reader.wait_for_function("reads >= 2 && mirror.length === 2")
        mine, theirs = same_models(reader, writer)
        assert mine == theirs
        assert sorted(m["text"] for m in mine) == ["after one", "after two"]
        info = reader.evaluate("resyncs[0]")
        assert info["backend"] == "notes" and info["reason"] == "history"


def test_the_demo_says_it_caught_up_after_the_network_came_back(
    server: ServerProcess, context: Context
) -> None:
    with Relay(server.port) as relay:
        away_page = context.page(relay.url + "/?room=resume-demo")
        other = context.page(server.url + "/?room=resume-demo")
        for page in (away_page, other):
            page.wait_for_selector("#status.live")

        watch_disconnect(away_page)
        relay.cut()
        away_page.wait_for_function("window.dropped === true")
        assert away_page.locator("#status").text_content() == "reconnecting…"
        other.fill("#message-input", "Written while you were away")
        other.press("#message-input", "Enter")
        other.locator("#message-list li").first.wait_for()
        relay.restore()

        away_page.wait_for_selector("#status.live", timeout=15_000)
        assert away_page.locator("#status").text_content() == "live · caught up on 1 change"
        assert away_page.locator("#message-list .text").all_text_contents() == [
            "Written while you were away"
        ]
