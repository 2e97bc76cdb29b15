"""The demo pages served by ``backboneio serve --demo`` (placeholder until issue 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def make_app(assets_dir: str | None = None) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"backboneio demo"]

    return app
