"""Browser fixtures for any test in the repo: the npm libraries, Debian's Chromium, contexts.

Never downloads a browser: Playwright drives /usr/bin/chromium. Every request
to anything but the loopback interface is aborted, so no page reaches a CDN.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.requires import binary, missing
from tests.support.server import ROOT

JS_DIR = ROOT / "tests" / "js"
NODE_MODULES = JS_DIR / "node_modules"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def npm_ci_needed() -> bool:
    # npm ci records what it installed here; an older copy means a stale install
    installed = NODE_MODULES / ".package-lock.json"
    lock = JS_DIR / "package-lock.json"
    return not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/js/node_modules at the pinned versions, installed with ``npm ci`` if missing."""
    if npm_ci_needed():
        npm = binary("npm", "apt-get install nodejs npm")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {JS_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return NODE_MODULES


@pytest.fixture(scope="session")
def node() -> str:
    return binary("node", "apt-get install nodejs npm")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        binary("chromium", "apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (python)", "pip install playwright")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Context:
    """A browser context that only reaches loopback, remembering what it refused."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 640, "height": 600})
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def page(self, url: str | None = None) -> Any:
        page = self.context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if url is not None:
            page.goto(url)
        return page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Context]:
    ctx = Context(browser)
    try:
        yield ctx
    finally:
        ctx.close()
    # Pages of these tests load everything from the test server, and a
    # callback that throws inside the client shows up here.
    assert ctx.blocked == [], f"pages tried to leave the machine: {ctx.blocked}"
    assert ctx.errors == [], f"uncaught errors in pages: {ctx.errors}"
