"""The pages ``backboneio serve --demo`` shows: Messages at ``/``, Todos at ``/todos``.

The browser libraries come from a local folder laid out like ``node_modules``
(``--assets DIR``, filled with :data:`NPM_INSTALL`), else from the first copy
at the pinned versions found in :func:`asset_places`, else from a public CDN
at pinned versions (with Subresource Integrity hashes).
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Library:
    """One npm package the demo pages load, at one version."""

    name: str
    version: str
    file: str  # path inside the npm package
    integrity: str  # Subresource Integrity hash of that file

    @property
    def cdn_url(self) -> str:
        return f"https://cdn.jsdelivr.net/npm/{self.name}@{self.version}/{self.file}"

    @property
    def local_url(self) -> str:
        return f"/assets/{self.name}/{self.file}"


# In load order. tests/js/package.json pins the same versions (a test checks).
LIBRARIES: tuple[Library, ...] = (
    Library(
        "underscore",
        "1.13.7",
        "underscore-umd-min.js",
        "sha384-pSOYJz6tr3k8mV502/FWpqSv7+V4JzjQc8uhWMOZE1SoCFLcJCSfxMFOE6hEd/hT",
    ),
    Library(
        "jquery",
        "3.7.1",
        "dist/jquery.min.js",
        "sha384-1H217gwSVyLSIfaLxHbE7dRb3v4mYCKbpQvzx0cegeju1MVsGrX5xXxAvs/HgeFs",
    ),
    Library(
        "backbone",
        "1.6.1",
        "backbone-min.js",
        "sha384-UAy8WXBh4m+7YoIXh0h0xZm8rbNZmnyyLsH2aOF0sZHmcu3zHB9CF0k+ubsp3uH6",
    ),
    Library(
        "socket.io-client",
        "4.8.1",
        "dist/socket.io.min.js",
        "sha384-mkQ3/7FUtcGyoppY6bz/PORYoGqOl7/aSUMn2ymDOJcapfS6PHqxhRTMh1RR0Q6+",
    ),
)

# Fills DIR/node_modules with the same files the CDN serves.
NPM_INSTALL = "npm install --prefix DIR " + " ".join(
    f"{lib.name}@{lib.version}" for lib in LIBRARIES
)

# URL path -> the HTML file in this package
PAGES: dict[str, str] = {
    "/": "messages.html",
    "/todos": "todos.html",
    "/playground": "playground.html",
}
STATIC: tuple[str, ...] = ("demo.css", "messages.js", "todos.js", "status.js", "libraries.js")
PLACEHOLDER = "<!-- libraries -->"
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


def library_tags(assets_dir: str | Path | None) -> str:
    """The ``<script>`` tags for the libraries, then backbone.io.js from the server.

    Between them, ``/libraries.js`` tells the reader in plain words when a
    library did not load (no network for the CDN) and how to serve them locally.
    """
    tags = []
    for lib in LIBRARIES:
        if assets_dir is None:
            tags.append(
                f'<script src="{lib.cdn_url}" integrity="{lib.integrity}" '
                'crossorigin="anonymous"></script>'
            )
        else:
            tags.append(f'<script src="{lib.local_url}"></script>')
    source = "cdn" if assets_dir is None else "local"
    install = html.escape(NPM_INSTALL.replace("DIR", "assets"), quote=True)
    tags.append(
        f'<script src="/libraries.js" data-source="{source}" data-install="{install}"></script>'
    )
    tags.append('<script src="/backbone.io.js"></script>')
    return "\n  ".join(tags)


def asset_places(cwd: Path | None = None) -> list[Path]:
    """Where ``backboneio serve --demo`` looks for the libraries without ``--assets``.

    In order: ``./assets/node_modules`` (what :data:`NPM_INSTALL` fills with
    ``DIR`` = ``assets``), ``./node_modules``, and in a checkout of the
    repository ``tests/js/node_modules`` (``npm ci --prefix tests/js``).
    """
    here = cwd or Path.cwd()
    places = [here / "assets" / "node_modules", here / "node_modules"]
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "tests" / "js" / "package.json").is_file():
        places.append(checkout / "tests" / "js" / "node_modules")
    return places


def _pinned_copy(root: Path) -> str | None:
    """Why ``root`` is not a copy of the pinned libraries, or None when it is."""
    for lib in LIBRARIES:
        if not (root / lib.name / lib.file).is_file():
            return f"no {lib.name}/{lib.file}"
        try:
            version = json.loads((root / lib.name / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"no readable {lib.name}/package.json"
        if version != lib.version:
            return f"{lib.name} is {version}, not {lib.version}"
    return None


def find_assets(places: Iterable[Path] | None = None) -> Path | None:
    """The first of ``places`` (default :func:`asset_places`) holding the pinned libraries."""
    for place in asset_places() if places is None else places:
        if not place.is_dir():
            continue
        why = _pinned_copy(place)
        if why is None:
            return place
        log.info("demo: not using the libraries in %s: %s", place, why)
    return None


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def _check_assets(assets_dir: str) -> Path:
    root = Path(assets_dir).resolve()
    missing = [lib.name for lib in LIBRARIES if not (root / lib.name / lib.file).is_file()]
    if missing:
        raise ConfigurationError(
            f"--assets {assets_dir}: missing {', '.join(missing)}; fill it with: "
            + NPM_INSTALL.replace("DIR", "FOLDER")
            + " and pass --assets FOLDER/node_modules"
        )
    return root


def make_app(assets_dir: str | None = None, *, find_local: bool = True) -> WSGIApp:
    """The demo as a WSGI app.

    ``assets_dir`` is a folder laid out like ``node_modules`` holding the
    libraries. Without it, a local copy at the pinned versions is looked for
    in :func:`asset_places` (unless ``find_local`` is false), and the pages
    load the libraries from the CDN when there is none.
    """
    assets: Path | None
    if assets_dir is not None:
        assets = _check_assets(assets_dir)
    else:
        assets = find_assets() if find_local else None
        if assets is not None:
            log.info("demo: serving the JavaScript libraries from %s", assets)
        else:
            log.info(
                "demo: the pages load their JavaScript libraries from cdn.jsdelivr.net; "
                "without a network, serve them locally: %s, then --assets assets/node_modules",
                NPM_INSTALL.replace("DIR", "assets"),
            )
    tags = library_tags(assets).encode()
    pages = {path: _read(name).replace(PLACEHOLDER.encode(), tags) for path, name in PAGES.items()}
    static = {f"/{name}": _read(name) for name in STATIC}
    # Only the files the pages load (and each package.json, which says the
    # version) are served from the assets folder, never the rest of it.
    asset_files: dict[str, Path] = {}
    if assets is not None:
        for lib in LIBRARIES:
            asset_files[lib.local_url] = assets / lib.name / lib.file
            asset_files[f"/assets/{lib.name}/package.json"] = assets / lib.name / "package.json"

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _respond(
                start_response,
                "405 Method Not Allowed",
                b"Method not allowed\n",
                "text/plain",
                [("Allow", "GET, HEAD")],
            )
        if path in pages:
            return _respond(start_response, "200 OK", pages[path], "text/html")
        if path in static:
            return _respond(start_response, "200 OK", static[path], _content_type(path))
        if path in asset_files and asset_files[path].is_file():
            return _respond(
                start_response, "200 OK", asset_files[path].read_bytes(), _content_type(path)
            )
        return _respond(start_response, "404 Not Found", b"Not found\n", "text/plain")

    return app


def _content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _respond(
    start_response: Callable[..., Any],
    status: str,
    body: bytes,
    content_type: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    if content_type.startswith("text/") or content_type.endswith(("javascript", "json")):
        content_type += "; charset=utf-8"
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            *SECURITY_HEADERS,
            *(extra or []),
        ],
    )
    return [body]


__all__ = ["LIBRARIES", "NPM_INSTALL", "Library", "asset_places", "find_assets", "make_app"]
