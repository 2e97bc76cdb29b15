"""``backboneio serve --demo``: the Messages and Todos pages in two windows."""

from __future__ import annotations

import json
import os
import threading
from base64 import b64encode
from collections.abc import Iterator
from hashlib import sha384
from pathlib import Path
from typing import Any

import pytest
from backboneio import demo

from tests.support.browser import Context
from tests.support.server import ROOT, ServerProcess

# The picture in docs/client.md; rewritten only when asked, since each run's
# clock differs: BACKBONEIO_UPDATE_SCREENSHOT=1 pytest tests/browser -k appears
DOCS_SCREENSHOT = ROOT / "docs" / "demo-screenshot.png"

# Two windows of the demo side by side, as a person would arrange them.
SIDE_BY_SIDE = """<!doctype html>
<style>
  body { margin: 0; display: flex; gap: 12px; padding: 12px; background: #cbd5e1;
         font: 13px system-ui, sans-serif; }
  figure { margin: 0; flex: 1; }
  figcaption { padding: 0 0 6px; color: #334155; }
  iframe { width: 100%; height: 400px; border: 1px solid #94a3b8; border-radius: 6px;
           background: #fff; }
</style>
<figure><figcaption>Window 1</figcaption><iframe id="one" src="URL"></iframe></figure>
<figure><figcaption>Window 2</figcaption><iframe id="two" src="URL"></iframe></figure>
"""


@pytest.fixture(scope="module")
def demo_server(node_modules: Path) -> Iterator[ServerProcess]:
    with ServerProcess(args=("--demo", "--assets", str(node_modules))) as srv:
        yield srv


def live(page: Any) -> None:
    page.wait_for_selector("#status.live")


@pytest.mark.browser
def test_a_message_sent_in_one_window_appears_in_the_other(
    demo_server: ServerProcess, browser: Any, tmp_path: Path
) -> None:
    ctx = Context(browser)
    try:
        page = ctx.context.new_page()
        page.set_viewport_size({"width": 1280, "height": 450})
        page.set_content(SIDE_BY_SIDE.replace("URL", demo_server.url + "/?room=screenshot"))
        one = page.frame_locator("#one")
        two = page.frame_locator("#two")
        for frame in (one, two):
            frame.locator("#status.live").wait_for()

        one.locator("#message-input").fill("Hello from window 1")
        one.locator("#message-input").press("Enter")
        two.locator("#message-list li").first.wait_for()
        two.locator("#message-input").fill("Hi! It arrived here at once.")
        two.locator("button[type=submit]").click()
        one.locator("#message-list li >> nth=1").wait_for()

        expected = ["Hello from window 1", "Hi! It arrived here at once."]
        for frame in (one, two):
            assert frame.locator("#message-list .text").all_text_contents() == expected
        page.mouse.move(0, 0)
        update = os.environ.get("BACKBONEIO_UPDATE_SCREENSHOT") == "1"
        shot = DOCS_SCREENSHOT if update else tmp_path / "demo-screenshot.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000  # a picture, not a blank page
        assert ctx.blocked == [] and ctx.errors == []
    finally:
        ctx.close()


@pytest.mark.browser
def test_todos_add_toggle_and_delete_follow_in_the_other_window(
    demo_server: ServerProcess, context: Context
) -> None:
    first = context.page(demo_server.url + "/todos")
    second = context.page(demo_server.url + "/todos")
    live(first)
    live(second)
    title = "Water the plants"

    first.fill("#todo-input", title)
    first.press("#todo-input", "Enter")
    item = second.locator("#todo-list li", has_text=title)
    item.wait_for()
    assert "1 item left" in second.locator("#todo-count").text_content()

    item.locator("input[type=checkbox]").check()
    first.locator("#todo-list li.done", has_text=title).wait_for()
    assert first.locator("#todo-list li", has_text=title).locator("input").is_checked()

    first.locator("#todo-list li", has_text=title).locator(".delete").click()
    item.wait_for(state="detached")
    assert second.locator("#todo-list li", has_text=title).count() == 0


@pytest.mark.browser
def test_the_todo_toggle_sends_a_patch_of_the_done_flag_only(
    demo_server: ServerProcess, context: Context
) -> None:
    page = context.page(demo_server.url + "/todos")
    live(page)
    page.fill("#todo-input", "Patch me")
    page.press("#todo-input", "Enter")
    row = page.locator("#todo-list li", has_text="Patch me")
    row.wait_for()
    sent = page.evaluate(
        """() => new Promise((resolve) => {
            const socket = Backbone.io.socketOf(demo.todos);
            const emit = socket.emit;
            socket.emit = function (event, request, ack) {
              if (event === 'sync') resolve(request);
              return emit.apply(this, arguments);
            };
            document.querySelector('#todo-list li:last-child input').click();
        })"""
    )
    assert sent["method"] == "patch"
    assert sorted(sent["model"]) == ["done", "id"]
    assert sent["model"]["done"] is True


def test_the_demo_pins_the_libraries_of_tests_js_package_lock(node_modules: Path) -> None:
    lock = json.loads((ROOT / "tests" / "js" / "package-lock.json").read_text())
    for lib in demo.LIBRARIES:
        assert lock["packages"][f"node_modules/{lib.name}"]["version"] == lib.version, lib.name
        body = (node_modules / lib.name / lib.file).read_bytes()
        assert lib.integrity == "sha384-" + b64encode(sha384(body).digest()).decode(), lib.name


def test_without_a_local_copy_the_pages_load_the_pinned_libraries_from_the_cdn() -> None:
    app = demo.make_app(None, find_local=False)
    answers: list[str] = []
    body = b"".join(app({"PATH_INFO": "/todos"}, lambda status, headers: answers.append(status)))
    html = body.decode()
    assert answers == ["200 OK"]
    for lib in demo.LIBRARIES:
        tag = f'<script src="{lib.cdn_url}" integrity="{lib.integrity}" crossorigin="anonymous">'
        assert tag in html
        assert f"@{lib.version}/" in lib.cdn_url
    assert html.index("backbone-min.js") < html.index('src="/backbone.io.js"')


def _copy_of_the_libraries(node_modules: Path, folder: Path, **versions: str) -> Path:
    """``folder`` laid out like node_modules, with a package.json saying ``versions``."""
    for lib in demo.LIBRARIES:
        target = folder / lib.name / lib.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((node_modules / lib.name / lib.file).read_bytes())
        version = versions.get(lib.name.replace(".", "_").replace("-", "_"), lib.version)
        (folder / lib.name / "package.json").write_text(json.dumps({"version": version}))
    return folder


def test_a_local_copy_at_the_pinned_versions_is_found_before_the_cdn(
    node_modules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = _copy_of_the_libraries(node_modules, tmp_path / "node_modules", backbone="1.5.0")
    fresh = _copy_of_the_libraries(node_modules, tmp_path / "assets" / "node_modules")
    assert demo.find_assets([tmp_path / "nowhere", stale]) is None
    assert demo.find_assets([stale, fresh]) == fresh

    monkeypatch.chdir(tmp_path)
    places = demo.asset_places()
    # the documented npm install place, then ./node_modules, then the checkout's
    assert places[:2] == [fresh, stale]
    assert places[2] == node_modules
    assert demo.find_assets() == fresh
    (fresh / "jquery" / "package.json").unlink()
    assert demo.find_assets() == node_modules

    app = demo.make_app(None)
    answers: list[str] = []
    page = b"".join(app({"PATH_INFO": "/"}, lambda status, headers: answers.append(status)))
    assert b'<script src="/assets/backbone/backbone-min.js">' in page
    assert b"cdn.jsdelivr.net" not in page
    served = b"".join(
        app({"PATH_INFO": "/assets/backbone/backbone-min.js"}, lambda *a: answers.append(a[0]))
    )
    assert served == (node_modules / "backbone" / "backbone-min.js").read_bytes()
    assert answers == ["200 OK", "200 OK"]


@pytest.mark.browser
def test_without_a_network_the_page_says_the_libraries_did_not_load_and_how_to_fix_it(
    browser: Any,
) -> None:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from backboneio.assets import ClientScriptApp

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = make_server(
        "127.0.0.1", 0, ClientScriptApp(demo.make_app(None, find_local=False)), handler_class=Quiet
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    ctx = Context(browser)  # it blocks the CDN, as a machine without a network would
    try:
        page = ctx.page(f"http://127.0.0.1:{httpd.server_port}/")
        problem = page.locator("#libraries-missing")
        problem.wait_for()
        text = problem.text_content()
        assert "could not load Underscore, jQuery, Backbone, socket.io-client" in text
        assert "cdn.jsdelivr.net" in text
        assert demo.NPM_INSTALL.replace("DIR", "assets") in text
        assert "backboneio serve --demo --assets assets/node_modules" in text
        assert page.locator("#status").text_content() == "not loaded"
        assert len(ctx.blocked) == len(demo.LIBRARIES)
        # Only backbone.io.js's own message reaches the console; the demo's
        # scripts stop quietly.
        assert ctx.errors and all("must be loaded after Backbone" in e for e in ctx.errors)
    finally:
        ctx.close()
        httpd.shutdown()
        httpd.server_close()


def test_an_assets_folder_without_the_libraries_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as failed:
        ServerProcess(args=("--demo", "--assets", str(tmp_path))).start()
    assert "npm install --prefix FOLDER underscore@" in str(failed.value)


def test_docs_client_md_gives_the_npm_command_of_the_pinned_versions() -> None:
    text = (ROOT / "docs" / "client.md").read_text()
    assert demo.NPM_INSTALL.replace("DIR", "assets") in text
    assert "npm ci --prefix tests/js" in text


@pytest.mark.browser
def test_the_todos_active_filter_is_a_live_query_kept_in_order(
    demo_server: ServerProcess, context: Context
) -> None:
    first = context.page(demo_server.url + "/todos#/active")
    second = context.page(demo_server.url + "/todos")
    live(first)
    live(second)
    assert first.locator("#todo-filters a.selected").text_content() == "Active"
    assert first.locator("#todo-list").get_attribute("data-filter") == "active"
    mine = ["Live one", "Live two", "Live three"]
    for title in mine:
        second.fill("#todo-input", title)
        second.press("#todo-input", "Enter")
        second.locator("#todo-list li", has_text=title).wait_for()

    def shown(page: Any) -> list[str]:
        # Other tests' todos may share the list: only this test's, in their order.
        titles = page.locator("#todo-list .title").all_text_contents()
        return [t for t in titles if t in mine]

    def wait_for(page: Any, titles: list[str]) -> None:
        page.wait_for_function(
            """([mine, titles]) => JSON.stringify([...document.querySelectorAll(
                   '#todo-list .title')].map((e) => e.textContent)
                   .filter((t) => mine.includes(t))) === JSON.stringify(titles)""",
            arg=[mine, titles],
        )

    wait_for(first, mine)
    # Ticked in the other window: it leaves the active list, and nothing else moves.
    second.locator("#todo-list li", has_text="Live two").locator("input").check()
    wait_for(first, ["Live one", "Live three"])
    assert first.locator("#todo-list li.done").count() == 0
    # Unticked: it comes back between the two, where it was made.
    second.locator("#todo-list li", has_text="Live two").locator("input").uncheck()
    wait_for(first, mine)

    # Ticked here: it leaves this list at once; "All" shows it again, done.
    # (click, not check: the row is gone before a check could see it ticked)
    first.locator("#todo-list li", has_text="Live three").locator("input").click()
    wait_for(first, ["Live one", "Live two"])
    first.click("#todo-filters a[data-filter=all]")
    wait_for(first, mine)
    assert first.locator("#todo-list li.done", has_text="Live three").count() == 1
    assert shown(second) == mine
    assert first.evaluate("Backbone.io.links().find((l) => l.backend === 'todos').live") == 0
