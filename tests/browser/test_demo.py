"""``backboneio serve --demo``: the Messages and Todos pages in two windows."""

from __future__ import annotations

import json
import os
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


def test_without_assets_the_pages_load_the_pinned_libraries_from_the_cdn() -> None:
    app = demo.make_app(None)
    answers: list[str] = []
    body = b"".join(app({"PATH_INFO": "/todos"}, lambda status, headers: answers.append(status)))
    html = body.decode()
    assert answers == ["200 OK"]
    for lib in demo.LIBRARIES:
        tag = f'<script src="{lib.cdn_url}" integrity="{lib.integrity}" crossorigin="anonymous">'
        assert tag in html
        assert f"@{lib.version}/" in lib.cdn_url
    assert html.index("backbone-min.js") < html.index('src="/backbone.io.js"')


def test_an_assets_folder_without_the_libraries_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as failed:
        ServerProcess(args=("--demo", "--assets", str(tmp_path))).start()
    assert "npm install --prefix FOLDER underscore@" in str(failed.value)


def test_docs_client_md_gives_the_npm_command_of_the_pinned_versions() -> None:
    text = (ROOT / "docs" / "client.md").read_text()
    assert demo.NPM_INSTALL.replace("DIR", "assets") in text
    assert "npm ci --prefix tests/js" in text
