"""The ``backboneio`` command: ``serve`` and ``plugins``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:  # imported lazily below: serve() monkey-patches before any import
    from .settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backboneio", description="Realtime Backbone.js sync server over Socket.IO."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--settings", help="settings module (default: $BACKBONEIO_SETTINGS)")
    serve.add_argument("--host", help="interface to bind (default: HOST setting, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT setting, 3000)")
    serve.add_argument(
        "--debug", action="store_true", default=None, help="send error details to clients"
    )
    serve.add_argument("--demo", action="store_true", help="also serve the demo pages at /")
    serve.add_argument(
        "--assets",
        metavar="DIR",
        help="serve the demo's JavaScript libraries from DIR instead of a CDN",
    )

    plugins = sub.add_parser("plugins", help="list installed plugins and their hooks")
    plugins.add_argument("--all", action="store_true", help="include the built-in default plugins")
    plugins.add_argument("--format", choices=("table", "json"), default="table")
    plugins.add_argument("--settings", help="settings module, to list only the plugins it enables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        return list_plugins(args)
    except ConfigurationError as exc:
        print(f"backboneio: configuration error: {exc}", file=sys.stderr)
        return 2


def serve(args: argparse.Namespace) -> int:
    from . import runner

    # Before anything imports a database driver, so its sockets are cooperative.
    runner.monkey_patch()

    from .app import build_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = _settings_for(args)
    if args.debug:
        settings.values["DEBUG"] = True
    app = None
    if args.demo:
        from . import demo

        app = demo.make_app(args.assets)
    elif args.assets:
        raise ConfigurationError("--assets only applies to --demo")
    server = build_server(settings, app)
    host = args.host or settings.HOST
    port = args.port if args.port is not None else settings.PORT

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        sock = runner.listen_socket(host, port)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from exc

    def ready(url: str) -> None:
        names = ", ".join(f"/{name}" for name in server.backends) or "none"
        print(f"backboneio serving on {url} (backends: {names})", flush=True)

    runner.serve(server.app, sock=sock, on_ready=ready)
    print("backboneio stopped", flush=True)
    return 0


def _settings_for(args: argparse.Namespace) -> Settings:
    from .settings import Settings

    if args.settings or not getattr(args, "demo", False):
        return Settings.from_module(args.settings)
    from .demo import settings as demo_settings

    return Settings(
        {k: getattr(demo_settings, k) for k in dir(demo_settings) if k.isupper()},
        source="the demo's settings",
    )


def list_plugins(args: argparse.Namespace) -> int:
    from .app import load_plugins
    from .plugins import describe_plugins
    from .settings import Settings

    settings = Settings.from_module(args.settings) if args.settings else Settings()
    pm = load_plugins(settings)
    infos = describe_plugins(pm, include_defaults=args.all)
    if args.format == "json":
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return 0
    rows = [("name", "version", "hooks")] + [
        (
            info.name + (" (default)" if info.default else ""),
            info.version or "-",
            ", ".join(info.hooks),
        )
        for info in infos
    ]
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, version, hooks in rows:
        print(f"{name:<{width[0]}}  {version:<{width[1]}}  {hooks}")
    if not infos:
        print("(no plugins installed)")
    return 0
