"""The ``backboneio`` command: ``serve``, ``plugins`` and ``new-plugin``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING, NoReturn

from . import requestlog
from .errors import ConfigurationError

if TYPE_CHECKING:  # imported lazily below: serve() monkey-patches before any import
    from .settings import Settings


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line that says where to look, as a configuration error does."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def _version() -> str:
    try:
        return metadata.version("backboneio")
    except metadata.PackageNotFoundError:  # running from a source tree
        from . import __version__

        return __version__


SETTINGS_HELP = "settings module name or path/to/settings.py (default: $BACKBONEIO_SETTINGS)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="backboneio", description="Realtime Backbone.js sync server over Socket.IO."
    )
    parser.add_argument("--version", action="version", version=f"backboneio {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--settings", help=SETTINGS_HELP)
    serve.add_argument("--host", help="interface to bind (default: HOST setting, 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, help="port to bind, 0 for any free one (default: PORT setting, 3000)"
    )
    serve.add_argument(
        "--debug", action="store_true", default=None, help="send error details to clients"
    )
    serve.add_argument(
        "--log-level",
        type=str.upper,
        choices=requestlog.LEVELS,
        help="lowest level logged; INFO logs a line per sync (default: LOG_LEVEL setting, INFO)",
    )
    serve.add_argument(
        "--log-format",
        choices=requestlog.FORMATS,
        help="text lines, or json: one object per line (default: LOG_FORMAT setting, text)",
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
    plugins.add_argument(
        "--settings", help="settings module or file, to list only the plugins it enables"
    )

    new_plugin = sub.add_parser(
        "new-plugin",
        help="write a plugin's skeleton: pyproject.toml, a hook, README, tests",
        description="Write the skeleton of a plugin, with an example hook and tests that "
        "pass, into a new folder DIR/backboneio-NAME.",
    )
    new_plugin.add_argument("name", help="the plugin's name, like word-count")
    new_plugin.add_argument(
        "--dir", default=".", help="where to create the plugin's folder (default: here)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "new-plugin":
            return new_plugin(args)
        return list_plugins(args)
    except ConfigurationError as exc:
        # One line per problem: Settings.check reports all of them at once.
        for message in getattr(exc, "messages", None) or [str(exc)]:
            print(f"backboneio: configuration error: {message}", file=sys.stderr)
        return 2


def serve(args: argparse.Namespace) -> int:
    from . import runner

    # Before anything imports a database driver, so its sockets are cooperative.
    runner.monkey_patch()

    from .app import build_server

    requestlog.configure()  # for what loading the settings logs
    settings = _settings_for(args)
    # A LOG_ setting of the wrong kind keeps the defaults: build_server reports it.
    with contextlib.suppress(ValueError):
        level, fmt = args.log_level or settings.LOG_LEVEL, args.log_format or settings.LOG_FORMAT
        requestlog.configure(level, fmt)
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

    try:
        sock = runner.listen_socket(host, port, settings)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from exc

    def ready(url: str) -> None:
        names = ", ".join(f"/{name}" for name in server.backends) or "none"
        print(f"backboneio serving on {url} (backends: {names})", flush=True)

    runner.serve(server.app, sock=sock, on_ready=ready, settings=settings, shutdown=server.shutdown)
    requestlog.flush()  # the last syncs' lines come before "stopped"
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
    from .plugins import describe_plugins, load_plugins
    from .settings import Settings

    def report(message: str) -> None:
        print(f"backboneio: {message}", file=sys.stderr)

    settings = Settings.from_module(args.settings) if args.settings else Settings()
    # The one tool for finding a broken plugin lists the others around it.
    pm = load_plugins(settings, report=report, strict=False)
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


def new_plugin(args: argparse.Namespace) -> int:
    from .templates import new_plugin as write_skeleton

    try:
        folder, files = write_skeleton(args.name, args.dir)
    except ValueError as exc:
        print(f"backboneio: error: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote {folder}:")
    for path in files:
        print(f"  {path.relative_to(folder)}")
    print(f'Next: cd {folder} && pip install -e ".[test]" && python -m pytest')
    return 0
