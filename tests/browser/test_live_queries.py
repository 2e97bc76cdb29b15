"""Live queries in Chromium: a page's collection is a window another page's writes move.

Real ``backboneio serve`` (its playground page loads the client), Debian's
Chromium through Playwright. The reader renders its live collection the way
a Backbone view written for ``add`` / ``remove`` / ``change`` / ``sort`` does,
one row at a time, and the tests read the rows: what a person sees. The
server's rules are proved with python-socketio clients in
tests/test_live_queries*.py; the client's own cases in tests/js/live.test.js.
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

SETTINGS = """
BACKENDS = {"tasks": {"store": "memory"}}
"""
CONNECT = "Backbone.io.connect({reconnectionDelay: 100, reconnectionDelayMax: 300})"

# The reader: `tasks` subscribes to `query`; #rows shows it row by row (an
# add goes in at its index, a remove takes its row out, a change rewrites its
# row, a sort rebuilds the list); `seen` is every add and remove it heard.
READER = """(query) => {
    window.listens = 0;
    Backbone.io.on('listen', () => { listens += 1; });
    window.tasks = new Backbone.Collection([], {backend: 'tasks'});
    window.seen = [];
    const list = document.createElement('ol');
    list.id = 'rows';
    document.body.appendChild(list);
    const row = (model) => {
        const li = document.createElement('li');
        li.textContent = model.get('title');
        li.dataset.cid = model.cid;
        return li;
    };
    const rebuild = () => list.replaceChildren(...tasks.map(row));
    tasks.on('add', (model, collection, options) => {
        seen.push('+' + model.get('title'));
        const at = options.index != null ? options.index : tasks.indexOf(model);
        list.insertBefore(row(model), list.children[at] || null);
    });
    tasks.on('remove', (model, collection, options) => {
        seen.push('-' + model.get('title'));
        list.children[options.index].remove();
    });
    tasks.on('change', (model) => {
        list.querySelector(`[data-cid="${model.cid}"]`).textContent = model.get('title');
    });
    tasks.on('sort reset', rebuild);
    return tasks.subscribe(query).then(() => tasks.length);
}"""

# The writer: a plain collection of the same backend, and one-off reads.
WRITER = """() => {
    window.all = new Backbone.Collection([], {backend: 'tasks'});
    window.write = (action, attrs) => {
        if (action === 'create') {
            return new Promise((resolve, reject) => all.create(attrs,
                {wait: true, success: (m) => resolve(m.id), error: (m, err) => reject(err)}));
        }
        const model = all.findWhere({title: attrs.title});
        if (action === 'patch') return model.save(attrs, {patch: true, wait: true});
        return new Promise((resolve, reject) => model.destroy(
            {wait: true, success: () => resolve(null), error: (m, err) => reject(err)}));
    };
    window.read = (query) => new Backbone.Collection([], {backend: 'tasks'})
        .fetch({data: query}).then((models) => models.map((m) => m.title));
}"""


@pytest.fixture(scope="module")
def server(node_modules: Path) -> Iterator[ServerProcess]:
    with ServerProcess(SETTINGS, args=("--demo", "--assets", str(node_modules))) as srv:
        yield srv


def reader(ctx: Context, url: str, query: dict[str, Any]) -> Any:
    page = ctx.page(url + "/playground")
    page.evaluate(CONNECT)
    page.evaluate(READER, query)
    return page


def writer(ctx: Context, url: str) -> Any:
    page = ctx.page(url + "/playground")
    page.evaluate(CONNECT)
    page.evaluate(WRITER)
    return page


def rows(page: Any) -> list[str]:
    return page.locator("#rows li").all_text_contents()


def shows(page: Any, titles: list[str]) -> None:
    """Waits until the rows are ``titles``, in order, and the collection agrees."""
    page.wait_for_function(
        """(titles) => JSON.stringify([...document.querySelectorAll('#rows li')]
              .map((li) => li.textContent)) === JSON.stringify(titles)
            && JSON.stringify(tasks.pluck('title')) === JSON.stringify(titles)""",
        arg=titles,
    )


def test_rows_enter_and_leave_at_their_place_as_another_page_writes(
    server: ServerProcess, context: Context
) -> None:
    tag = "order"
    query = {"tag": tag, "done": False, "$sort": {"n": 1}}
    a = reader(context, server.url, query)
    b = writer(context, server.url)
    for n in (5, 1, 3):
        b.evaluate(
            "(t) => write('create', t)", {"tag": tag, "n": n, "done": False, "title": f"t{n}"}
        )
    b.evaluate("(t) => write('create', t)", {"tag": tag, "n": 2, "done": True, "title": "t2"})
    shows(a, ["t1", "t3", "t5"])  # t2 is done: never shown

    b.evaluate("write('patch', {title: 't3', done: true})")
    shows(a, ["t1", "t5"])
    b.evaluate("write('patch', {title: 't2', done: false})")  # enters between them
    shows(a, ["t1", "t2", "t5"])
    b.evaluate("write('patch', {title: 't3', done: false})")
    shows(a, ["t1", "t2", "t3", "t5"])
    b.evaluate("write('patch', {title: 't1', n: 4})")  # moves, a change
    shows(a, ["t2", "t3", "t1", "t5"])
    b.evaluate("write('delete', {title: 't5'})")
    shows(a, ["t2", "t3", "t1"])
    assert rows(a) == b.evaluate("(q) => read(q)", query)
    assert a.evaluate("seen") == ["+t5", "+t1", "+t3", "-t3", "+t2", "+t3", "-t5"]


def test_a_sort_and_limit_window_pushes_the_last_out_when_one_enters_at_the_top(
    server: ServerProcess, context: Context
) -> None:
    tag = "top"
    query = {"tag": tag, "$sort": {"n": -1}, "$limit": 3}
    b = writer(context, server.url)
    for n in (1, 2, 3, 4):
        b.evaluate("(t) => write('create', t)", {"tag": tag, "n": n, "title": f"t{n}"})
    a = reader(context, server.url, query)
    shows(a, ["t4", "t3", "t2"])
    a.evaluate("seen.length = 0")

    b.evaluate("(t) => write('create', t)", {"tag": tag, "n": 9, "title": "t9"})
    shows(a, ["t9", "t4", "t3"])
    assert a.evaluate("seen") == ["-t2", "+t9"]
    b.evaluate("write('delete', {title: 't4'})")  # t2 comes back from below the limit
    shows(a, ["t9", "t3", "t2"])
    assert a.evaluate("seen") == ["-t2", "+t9", "-t4", "+t2"]
    assert rows(a) == b.evaluate("(q) => read(q)", query)


def test_a_create_through_the_live_collection_is_one_row_at_its_place(
    server: ServerProcess, context: Context
) -> None:
    tag = "own"
    query = {"tag": tag, "$sort": {"n": 1}}
    b = writer(context, server.url)
    for n in (1, 3):
        b.evaluate("(t) => write('create', t)", {"tag": tag, "n": n, "title": f"t{n}"})
    a = reader(context, server.url, query)
    shows(a, ["t1", "t3"])
    # Shown at once, at the end; the server's enter puts it in its place.
    a.evaluate("(t) => { window.mine = tasks.create(t); }", {"tag": tag, "n": 2, "title": "t2"})
    a.wait_for_function("!mine.isNew() && !mine.pending")
    shows(a, ["t1", "t2", "t3"])
    assert a.evaluate("tasks.get(mine.id) === mine && tasks.length") == 3
    b.wait_for_function("(q) => read(q).then((t) => t.length === 3)", arg=query)


def test_unsubscribe_stops_the_updates(server: ServerProcess, context: Context) -> None:
    tag = "stop"
    query = {"tag": tag}
    a = reader(context, server.url, query)
    b = writer(context, server.url)
    b.evaluate("(t) => write('create', t)", {"tag": tag, "title": "before"})
    shows(a, ["before"])
    a.evaluate("tasks.unsubscribe()")
    assert a.evaluate("Backbone.io.links().find((l) => l.backend === 'tasks').live") == 0
    b.evaluate("(t) => write('create', t)", {"tag": tag, "title": "after"})
    b.evaluate("write('patch', {title: 'before', n: 1})")
    # The server tells a writer's audience before answering the writer; a read
    # answered on the reader's socket comes after anything sent to it before.
    a.evaluate("new Backbone.Collection([], {backend: 'tasks'}).fetch({data: {tag: 'stop'}})")
    assert rows(a) == ["before"]
    assert a.evaluate("tasks.first().has('n')") is False


def test_after_a_reconnect_the_window_is_the_servers_and_unchanged_rows_stay(
    server: ServerProcess, context: Context
) -> None:
    tag = "cut"
    query = {"tag": tag, "done": False, "$sort": {"n": 1}, "$limit": 3}
    relay = Relay(server.port)
    try:
        b = writer(context, server.url)
        for n in (1, 2, 3, 4):
            b.evaluate(
                "(t) => write('create', t)", {"tag": tag, "n": n, "done": False, "title": f"t{n}"}
            )
        a = reader(context, relay.url, query)
        shows(a, ["t1", "t2", "t3"])
        a.wait_for_function("listens === 1")
        kept = a.evaluate("[tasks.first().cid, tasks.last().cid]")
        a.evaluate("seen.length = 0")

        relay.cut()
        a.wait_for_function("Backbone.io.links().every((l) => !l.ready)")  # it knows
        b.evaluate("write('patch', {title: 't2', done: true})")  # leaves
        b.evaluate("(t) => write('create', t)", {"tag": tag, "n": 0, "done": False, "title": "t0"})
        b.evaluate("write('delete', {title: 't4'})")  # below the window: nothing to see
        assert rows(a) == ["t1", "t2", "t3"]  # cut off: nothing arrived
        relay.restore()

        a.wait_for_function("listens === 2")
        expected = b.evaluate("(q) => read(q)", query)
        assert expected == ["t0", "t1", "t3"]
        shows(a, expected)
        # Backbone's set: only the differences; t1 and t3 are the same models.
        assert sorted(a.evaluate("seen")) == ["+t0", "-t2"]
        assert a.evaluate("[tasks.findWhere({title: 't1'}).cid, tasks.last().cid]") == kept

        # Still live on the new connection.
        b.evaluate("write('patch', {title: 't1', done: true})")
        shows(a, ["t0", "t3"])
    finally:
        relay.close()
