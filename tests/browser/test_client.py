"""backbone.io.js in Chromium against a real server: pages drive the client API.

Each test opens the demo's /playground page (the libraries and the client,
no application code) and runs the API in it with ``page.evaluate``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Context
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

SETTINGS = """
from backboneio.errors import Forbidden


def no_shouting(req, res, next):
    text = req.model.get("text")
    if req.method != "read" and isinstance(text, str) and text.isupper():
        raise Forbidden("No shouting, please", field="text")
    next()


BACKENDS = {
    "messages": {"store": "memory"},
    "todos": {"store": "memory"},
    "items": {"store": "memory"},
    "custom": {"store": "memory", "event": "news"},
    "strict": {"store": "memory", "middleware": [__name__ + ".no_shouting"]},
}
"""

# Reconnect quickly after a restart; the defaults wait up to 5 s.
CONNECT = "Backbone.io.connect({reconnectionDelay: 100, reconnectionDelayMax: 300})"
_channels = itertools.count()


@pytest.fixture(scope="module")
def server(node_modules: Path) -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv:
        yield srv


def channel() -> str:
    """A channel of its own for each test: the module's server is shared."""
    return f"test-{next(_channels)}"


# collection.create() returns the model, not the sync's promise: this does.
CREATED = """() => {
    window.within = (promise, ms = 8000) => Promise.race([promise, new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms))]);
    window.created = (collection, attrs) => new Promise((resolve, reject) => {
        collection.create(attrs, {wait: true, success: resolve, error: (m, err) => reject(err)});
    });
}"""


def open_page(ctx: Context, url: str) -> Any:
    page = ctx.page(url + "/playground")
    page.evaluate(CONNECT)
    page.evaluate(CREATED)
    return page


def call(page: Any, script: str, arg: Any = None) -> Any:
    """``page.evaluate`` of a function returning a promise, failing instead of hanging."""
    return page.evaluate(f"(arg) => within(({script})(arg))", arg)


def mirror(page: Any, backend: Any) -> None:
    """``window.mirror``: a bound collection on ``backend``, with every event it heard."""
    call(
        page,
        """(backend) => new Promise((resolve) => {
            window.heard = [];
            window.mirror = new Backbone.Collection([], {backend}).bindBackend();
            mirror.on('all', (name) => heard.push(name));
            Backbone.io.once('listen', resolve);
        })""",
        backend,
    )


def wait_for_event(page: Any, name: str, count: int = 1) -> None:
    page.wait_for_function(
        "([name, count]) => heard.filter((e) => e === name).length >= count", arg=[name, count]
    )


def test_create_update_patch_and_delete_propagate_and_bind_backend_applies_them(
    server: ServerProcess, context: Context
) -> None:
    spec = {"name": "items", "channel": channel()}
    reader = open_page(context, server.url)
    writer = open_page(context, server.url)
    mirror(reader, spec)
    call(
        writer,
        """(backend) => {
            window.items = new Backbone.Collection([], {backend});
            return items.create({title: 'first', extra: 1}, {wait: true}).id;
        }""",
        spec,
    )
    writer.wait_for_function("items.length === 1 && items.first().id")
    model_id = writer.evaluate("items.first().id")
    wait_for_event(reader, "backend:create")
    assert reader.evaluate("mirror.toJSON()") == [{"id": model_id, "title": "first", "extra": 1}]

    writer.evaluate("items.first().unset('extra').save({title: 'second'})")
    wait_for_event(reader, "backend:update")
    assert reader.evaluate("mirror.toJSON()") == [{"id": model_id, "title": "second"}]

    writer.evaluate("items.first().save({done: true}, {patch: true})")
    wait_for_event(reader, "backend:patch")
    assert reader.evaluate("mirror.first().attributes") == {
        "id": model_id,
        "title": "second",
        "done": True,
    }

    writer.evaluate("items.first().destroy()")
    wait_for_event(reader, "backend:delete")
    assert reader.evaluate("mirror.length") == 0
    # each change came as <event> (method, model) then <event>:<method> (model)
    assert [e for e in reader.evaluate("heard") if e.startswith("backend")] == [
        "backend",
        "backend:create",
        "backend",
        "backend:update",
        "backend",
        "backend:patch",
        "backend",
        "backend:delete",
    ]


def test_a_page_on_one_channel_never_sees_changes_on_another(
    server: ServerProcess, context: Context
) -> None:
    a, b = channel(), channel()
    on_a = open_page(context, server.url)
    on_b = open_page(context, server.url)
    writer = open_page(context, server.url)
    mirror(on_a, {"name": "items", "channel": a})
    mirror(on_b, {"name": "items", "channel": b})
    # One page writing to both channels: a second channel of one backend
    # gets a connection of its own.
    call(
        writer,
        """([a, b]) => {
            const onB = new Backbone.Collection([], {backend: {name: 'items', channel: b}});
            const onA = new Backbone.Collection([], {backend: {name: 'items', channel: a}});
            // B's change is answered (so broadcast) before A's is even sent: a
            // page on A that wrongly heard B would hear it first.
            return created(onB, {title: 'for B'}).then(() => created(onA, {title: 'for A'}));
        }""",
        [a, b],
    )
    wait_for_event(on_a, "backend:create")
    wait_for_event(on_b, "backend:create")
    assert on_a.evaluate("mirror.pluck('title')") == ["for A"]
    assert on_b.evaluate("mirror.pluck('title')") == ["for B"]


def test_the_event_prefix_set_on_the_server_is_used_by_the_client(
    server: ServerProcess, context: Context
) -> None:
    spec = {"name": "custom", "channel": channel()}
    reader = open_page(context, server.url)
    writer = open_page(context, server.url)
    mirror(reader, spec)
    writer.evaluate(
        "(backend) => new (Backbone.Model.extend({backend}))().save({text: 'extra!'})", spec
    )
    wait_for_event(reader, "news:create")
    assert reader.evaluate("heard.filter((e) => e.includes(':'))") == ["news:create"]
    # bindBackend follows the server's prefix too
    assert reader.evaluate("mirror.pluck('text')") == ["extra!"]
    assert "backend:create" not in reader.evaluate("heard")


def test_a_server_error_reaches_the_error_callback_and_the_promise(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url)
    result = call(
        page,
        """() => new Promise((resolve) => {
            const seen = {};
            // With wait: true the model is not in the collection yet, so its
            // events are heard on the model. Backbone passes along 'request'
            // what sync returned.
            const Shout = Backbone.Model.extend({initialize() {
                this.on('error', (model, err) => { seen.event = err; });
                this.once('request', onRequest);
            }});
            const messages = new Backbone.Collection([], {backend: 'strict', model: Shout});
            function onRequest(model, promise) {
                seen.jquery = typeof promise.done === 'function';
                promise.fail((err) => {
                    seen.promise = err;
                    seen.length = messages.length;
                    resolve(seen);
                });
            }
            messages.create({text: 'HELLO'}, {
                wait: true,
                error: (m, err) => { seen.callback = err; },
            });
        })""",
    )
    expected = {
        "name": "Forbidden",
        "message": "No shouting, please",
        "status": 403,
        "field": "text",
    }
    assert result["callback"] == expected
    assert result["promise"] == expected
    assert result["event"] == expected
    assert result["jquery"] is True  # jQuery is on the page: a Deferred's promise
    assert result["length"] == 0  # wait: true never added it


def test_wait_true_adds_the_model_only_with_the_servers_answer(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url)
    result = call(
        page,
        """(channel) => new Promise((resolve) => {
            const items = new Backbone.Collection([], {backend: {name: 'items', channel}});
            const model = items.create({title: 'waited'}, {
                wait: true,
                success: (saved) => resolve({during, after: items.length, id: saved.id}),
            });
            const during = items.length;
        })""",
        channel(),
    )
    assert result["during"] == 0
    assert result["after"] == 1
    assert isinstance(result["id"], str) and result["id"]

    destroyed = call(
        page,
        """(channel) => new Promise((resolve) => {
            const items = new Backbone.Collection([], {backend: {name: 'items', channel}});
            created(items, {title: 'to go'}).then((model) => {
                model.destroy({wait: true, success: () => resolve({during, after: items.length})});
                const during = items.length;
            });
        })""",
        channel(),
    )
    assert destroyed == {"during": 1, "after": 0}


def test_fetch_sends_the_data_query_and_reset_replaces_the_collection(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url)
    tag = channel()
    result = call(
        page,
        """(tag) => {
            const Items = Backbone.Collection.extend({backend: 'items'});
            const writer = new Items();
            const saves = ['red', 'red', 'blue'].map((colour) => created(writer, {tag, colour}));
            return Promise.all(saves).then(() => {
                const reds = new Items([{id: 'local-only', tag}]);
                const events = [];
                // 'add' is (model, collection), 'reset' is (collection, options)
                reds.on('reset add', (first, second) =>
                    events.push(second === reds ? 'add' : 'reset'));
                return reds.fetch({data: {tag, colour: 'red'}, reset: true}).then(() => ({
                    colours: reds.pluck('colour'),
                    localGone: !reds.get('local-only'),
                    events,
                }));
            });
        }""",
        tag,
    )
    assert result["colours"] == ["red", "red"]
    assert result["localGone"] is True
    assert result["events"] == ["reset"]


def test_a_model_with_its_own_backend_and_no_collection_syncs(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url)
    other = open_page(context, server.url)
    spec = {"name": "items", "channel": channel()}
    model_id = call(
        page,
        """(backend) => {
            window.Note = Backbone.Model.extend({backend});
            window.note = new Note({text: 'draft'});
            return note.save().then(() => note.id);
        }""",
        spec,
    )
    page.evaluate("note.bindBackend(); note.on('change:text', () => window.changed = true)")
    fetched = call(
        other,
        """([backend, id]) => {
            const copy = new (Backbone.Model.extend({backend}))({id});
            return copy.fetch()
                .then(() => copy.save({text: 'final'}, {patch: true}))
                .then(() => copy.toJSON());
        }""",
        [spec, model_id],
    )
    assert fetched == {"id": model_id, "text": "final"}
    page.wait_for_function("window.changed === true")
    assert page.evaluate("note.toJSON()") == {"id": model_id, "text": "final"}
    assert page.evaluate("note.collection") is None


def test_a_page_without_a_backend_still_uses_the_original_backbone_sync(
    server: ServerProcess, context: Context
) -> None:
    page = open_page(context, server.url)
    result = call(
        page,
        """() => {
            const Package = Backbone.Model.extend({url: '/assets/backbone/package.json'});
            const model = new Package();
            const xhr = model.fetch();
            return xhr.then(() => ({
                isXhr: typeof xhr.readyState === 'number' && typeof xhr.abort === 'function',
                name: model.get('name'),
                version: model.get('version'),
                originalKept: Backbone.io.originalSync !== Backbone.sync,
            }));
        }""",
    )
    assert result == {"isXhr": True, "name": "backbone", "version": "1.6.1", "originalKept": True}


def test_after_a_server_restart_the_page_keeps_syncing_without_a_reload(
    node_modules: Path, context: Context
) -> None:
    with ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv:
        reader = open_page(context, srv.url)
        writer = open_page(context, srv.url)
        mirror(reader, "items")
        writer.evaluate("window.items = new Backbone.Collection([], {backend: 'items'})")
        call(writer, "() => created(items, {title: 'before'})")
        wait_for_event(reader, "backend:create")
        for page in (reader, writer):
            call(
                page,
                """() => {
                    window.relistened = new Promise((resolve) => {
                        Backbone.io.once('disconnect', () => Backbone.io.once('listen', resolve));
                    });
                }""",
            )

        writer.evaluate("() => { window.sameDocument = true; }")
        srv.stop()
        # Sent while the server is down: queued, delivered once it is back.
        writer.evaluate("() => { window.queued = created(items, {title: 'while down'}); }")
        srv.start()
        for page in (reader, writer):
            call(page, "() => relistened")
        saved = call(writer, "() => queued.then((model) => model.get('title'))")
        assert saved == "while down"
        assert writer.evaluate("window.sameDocument") is True  # no reload happened

        call(writer, "() => created(items, {title: 'after'})")
        reader.wait_for_function("mirror.pluck('title').includes('after')")
        # The memory store started empty again; the page's fetch says so.
        titles = call(
            reader,
            "() => new Backbone.Collection([], {backend: 'items'}).fetch().then((list) => "
            "list.map((m) => m.title).sort())",
        )
        assert titles == ["after", "while down"]


def test_a_throwing_jquery_callback_does_not_stop_the_other_syncs_or_disconnect(
    server: ServerProcess, browser: Any
) -> None:
    # A context of its own: the thrown error must reach the page, which the
    # shared fixture counts as a failure.
    ctx = Context(browser)
    try:
        page = ctx.page(server.url + "/playground")
        result = page.evaluate(
            """() => {
                const items = new Backbone.Collection([], {backend: 'items'});
                const failed = [];
                // never connected: both wait in the queue until disconnect()
                items.fetch().fail(() => {
                    failed.push('first');
                    throw new Error('callback bug');
                });
                items.fetch().fail((err) => failed.push(err.name));
                let threw = false;
                try { Backbone.io.disconnect(); } catch (exc) { threw = true; }
                return new Promise((resolve) => setTimeout(() => resolve({failed, threw}), 50));
            }"""
        )
        page.wait_for_timeout(100)
        assert result == {"failed": ["first", "Unavailable"], "threw": False}
        assert any("callback bug" in error for error in ctx.errors)
    finally:
        ctx.close()
