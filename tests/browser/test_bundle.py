"""client/, the npm package backboneio-client: packed, bundled with esbuild, type-checked.

``npm pack`` runs the package's build (client/build.mjs, which generates
client/dist/ from core/backboneio/static/backbone.io.js) and the tarball is
unpacked into ``node_modules`` of a throwaway app whose other packages are
links to tests/js/node_modules, as an install would lay them out. The app is
bundled by esbuild from the package's ES module and served by a real server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import JS_DIR, Context
from tests.support.requires import binary
from tests.support.server import ROOT, ServerProcess

CLIENT = ROOT / "client"
PEERS = ("backbone", "underscore", "socket.io-client", "@types/backbone")

# A server with one backend in front of a WSGI app serving the bundled app.
SERVER = """
import os
import sys
from pathlib import Path

import backboneio
from backboneio import runner

runner.monkey_patch()

SITE = Path(os.environ["BUNDLE_SITE"])
TYPES = {".html": "text/html; charset=utf-8", ".js": "application/javascript"}


def site(environ, start_response):
    name = environ["PATH_INFO"].strip("/") or "index.html"
    path = SITE / name
    if "/" in name or not path.is_file():
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    body = path.read_bytes()
    start_response("200 OK", [("Content-Type", TYPES[path.suffix]),
                              ("Content-Length", str(len(body)))])
    return [body]


items = backboneio.create_backend()
items.use(backboneio.stores.memory())
server = backboneio.listen(site, {"items": items})
runner.serve(server.app, "127.0.0.1", int(sys.argv[1]),
             on_ready=lambda url: print(f"backboneio serving on {url}", flush=True))
"""

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>bundled</title>
<script type="module" src="/app.js"></script>
"""

# The app: plain imports of the packages, as an application's source has them.
APP = """
import Backbone from 'backbone';
import backboneIO from 'backboneio-client';

const channel = new URLSearchParams(location.search).get('channel');
backboneIO.connect({reconnectionDelay: 100, syncTimeout: 5000});

const Items = Backbone.Collection.extend({backend: {name: 'items', channel}});
const items = new Items();
const heard = [];
items.on('all', (name) => heard.push(name));
items.bindBackend();

window.app = {
  Backbone, backboneIO, items, heard, fetched: false, error: null,
  create(attrs) {
    return new Promise((resolve, reject) => items.create(attrs, {
      wait: true, success: (model) => resolve(model.toJSON()), error: (m, err) => reject(err),
    }));
  },
};
items.fetch().then(() => { window.app.fetched = true; }, (err) => { window.app.error = err; });
"""

# Node's own resolution of the package: `import` gets the ES module, `require` the UMD.
NODE_CHECK = """
import Backbone from 'backbone';
import backboneIO from 'backboneio-client';
import {createRequire} from 'node:module';
const require = createRequire(import.meta.url);
const resolved = {
  import: import.meta.resolve('backboneio-client'),
  require: require.resolve('backboneio-client'),
};
console.log(JSON.stringify({
  resolved,
  same: backboneIO === Backbone.io && require('backboneio-client') === backboneIO,
  version: backboneIO.VERSION,
}));
"""


def run(cmd: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def targets(exports: Any) -> Iterator[str]:
    """The file paths an ``exports`` map points to (its values, not its keys)."""
    if isinstance(exports, str):
        yield exports
    else:
        for value in exports.values():
            yield from targets(value)


def package_json() -> dict[str, Any]:
    return json.loads((CLIENT / "package.json").read_text())


@pytest.fixture(scope="module")
def app_dir(node_modules: Path, node: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app folder whose node_modules holds the packed package and links to its peers."""
    npm = binary("npm", "apt-get install nodejs npm")
    app = tmp_path_factory.mktemp("bundle-app")
    packed = run([npm, "pack", "--json", "--pack-destination", str(app)], cwd=CLIENT)
    assert packed.returncode == 0, packed.stdout + packed.stderr
    # npm prints the prepack script's output before the JSON report
    report = json.loads(packed.stdout[packed.stdout.index("[") :])[0]
    target = app / "node_modules" / "backboneio-client"
    target.mkdir(parents=True)
    with tarfile.open(app / report["filename"]) as tar:
        for member in tar.getmembers():
            assert member.isfile() and member.name.startswith("package/"), member.name
            member.name = member.name.removeprefix("package/")
            tar.extract(member, target, filter="data")
    for peer in PEERS:
        link = app / "node_modules" / peer
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(node_modules / peer, link, target_is_directory=True)
    return app


def test_the_package_is_the_served_file_and_its_manifest_holds_together(app_dir: Path) -> None:
    installed = app_dir / "node_modules" / "backboneio-client"
    served = ROOT / "core" / "backboneio" / "static" / "backbone.io.js"
    # one source: the UMD build is the served file, the ES module wraps it unchanged
    assert (installed / "dist" / "backbone.io.js").read_bytes() == served.read_bytes()
    assert served.read_text().rstrip() in (installed / "dist" / "backbone.io.mjs").read_text()

    pkg = package_json()
    shipped = {p.relative_to(installed).as_posix() for p in installed.rglob("*") if p.is_file()}
    assert shipped == {*pkg["files"], "package.json"}
    assert {target.removeprefix("./") for target in targets(pkg["exports"])} <= shipped
    assert pkg["types"].removeprefix("./") in shipped

    version = re.search(r"VERSION: '([^']+)'", served.read_text())
    assert version and pkg["version"] == version[1]
    # the peers start at the versions the tests run against
    pins = json.loads((JS_DIR / "package.json").read_text())
    pinned = {**pins["dependencies"], **pins["devDependencies"]}
    assert {name: f"^{pinned[name]}" for name in PEERS} == pkg["peerDependencies"]


def test_node_resolves_import_to_the_es_module_and_require_to_the_umd(
    app_dir: Path, node: str
) -> None:
    (app_dir / "check.mjs").write_text(NODE_CHECK)
    done = run([node, "check.mjs"], cwd=app_dir)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["resolved"]["import"].endswith("/backboneio-client/dist/backbone.io.mjs")
    assert result["resolved"]["require"].endswith("/backboneio-client/dist/backbone.io.js")
    assert result["same"] is True
    assert result["version"] == package_json()["version"]


@pytest.fixture(scope="module")
def site(app_dir: Path, node_modules: Path) -> Path:
    """The app bundled by esbuild from the package's ES module: index.html and app.js."""
    (app_dir / "app.js").write_text(APP)
    out = app_dir / "site"
    out.mkdir()
    (out / "index.html").write_text(PAGE)
    esbuild = node_modules / ".bin" / "esbuild"
    done = run(
        [str(esbuild), "app.js", "--bundle", "--format=esm", "--metafile=meta.json",
         "--outfile=site/app.js", "--log-level=warning"],
        cwd=app_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    inputs = json.loads((app_dir / "meta.json").read_text())["inputs"]
    # bundled from the ES module, not the UMD file, with one copy of each library
    assert any(name.endswith("backboneio-client/dist/backbone.io.mjs") for name in inputs)
    assert not any(name.endswith("backboneio-client/dist/backbone.io.js") for name in inputs)
    assert len([name for name in inputs if name.endswith("/backbone.js")]) == 1
    assert not any("underscore/underscore" in name for name in inputs)  # only its modules/
    return out


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    script = tmp_path_factory.mktemp("bundle-server") / "serve_bundle.py"
    script.write_text(textwrap.dedent(SERVER))
    with ServerProcess(script=str(script), env={"BUNDLE_SITE": str(site)}) as srv:
        yield srv


def open_app(ctx: Context, url: str) -> Any:
    page = ctx.page(url)
    page.wait_for_function("window.app && (app.fetched || app.error)")
    assert page.evaluate("app.error") is None
    return page


def create(page: Any, attrs: dict[str, Any]) -> Any:
    """``app.create`` with a bound wait: Playwright's evaluate has no timeout of its own."""
    return page.evaluate(
        """(attrs) => Promise.race([app.create(attrs), new Promise((_, reject) =>
            setTimeout(() => reject(new Error('no answer within 8 s')), 8000))])""",
        attrs,
    )


@pytest.mark.browser
def test_the_bundled_app_fetches_creates_and_hears_another_client_live(
    server: ServerProcess, context: Context
) -> None:
    url = server.url + "/?channel=bundle"
    writer = open_app(context, url)
    # the bundle brings its own libraries: nothing on the page's globals
    assert writer.evaluate("[typeof Backbone, typeof _, typeof io]") == ["undefined"] * 3
    assert writer.evaluate("app.backboneIO === app.Backbone.io && app.items.length") == 0
    first = create(writer, {"title": "first"})

    reader = open_app(context, url)
    assert reader.evaluate("app.items.toJSON()") == [first]  # fetched
    second = create(writer, {"title": "second"})
    reader.wait_for_function("app.heard.includes('backend:create')")
    assert reader.evaluate("app.items.toJSON()") == [first, second]  # heard live, applied

    create(reader, {"title": "third"})
    writer.wait_for_function("app.items.length === 3")
    assert writer.evaluate("app.items.pluck('title')") == ["first", "second", "third"]
    assert writer.evaluate("app.backboneIO.links()[0].ready") is True


def typecheck(app: Path, node_modules: Path, *files: str, **options: str) -> tuple[int, str]:
    tsc = node_modules / ".bin" / "tsc"
    flags = [arg for name, value in options.items() for arg in (f"--{name}", value)]
    done = run([str(tsc), "--noEmit", "--strict", "--types", "", *flags, *files], cwd=app)
    return done.returncode, done.stdout + done.stderr


BUNDLER = {"module": "esnext", "moduleResolution": "bundler", "target": "es2022"}
NODE = {"module": "nodenext", "target": "es2022"}


def test_the_types_check_a_typescript_app_and_catch_a_wrong_one(
    app_dir: Path, node_modules: Path
) -> None:
    for name in ("usage.ts", "require.cts", "wrong.ts"):
        shutil.copy(CLIENT / "test" / name, app_dir / name)
    shutil.copy(CLIENT / "test" / "usage.ts", app_dir / "usage.mts")

    # a bundler's resolution, node's ES modules (import: index.d.mts), node's require (index.d.ts)
    for files, options in ((["usage.ts"], BUNDLER), (["usage.mts"], NODE), (["require.cts"], NODE)):
        code, output = typecheck(app_dir, node_modules, *files, **options)
        assert code == 0, f"{files}: {output}"

    code, output = typecheck(app_dir, node_modules, "wrong.ts", **BUNDLER)
    assert code != 0
    lines = (app_dir / "wrong.ts").read_text().splitlines()
    wanted = {number for number, line in enumerate(lines, 1) if "// error:" in line}
    failed = {int(n) for n in re.findall(r"^wrong\.ts\((\d+),\d+\): error", output, re.M)}
    assert failed == wanted, output
