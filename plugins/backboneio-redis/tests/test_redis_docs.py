"""docs/stores-redis.md keeps up with what the plugin declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import backboneio_redis

DOC = Path(__file__).resolve().parents[3] / "docs" / "stores-redis.md"


def declared(hook: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    hook(lambda name, default=None, *args, **kwargs: found.__setitem__(name, (default, kwargs)))
    return found


def test_every_store_option_is_documented_with_its_default() -> None:
    text = DOC.read_text()
    (_, kwargs) = declared(backboneio_redis.register_stores)["redis"]
    for option, default in kwargs["options"].items():
        shown = "None" if default is None else repr(default).replace("'", '"')
        assert f"| `{option}` |" in text, f"{DOC.name} does not document option {option}"
        if option != "prefix":  # its default depends on the backend's name
            assert f"| `{option}` | `{shown}` |" in text, f"{option}: default {shown}"


def test_every_setting_is_documented_with_its_default() -> None:
    text = DOC.read_text()
    for name, (default, _) in declared(backboneio_redis.register_settings).items():
        shown = "None" if default is None else repr(default).replace("'", '"')
        assert f"| `{name}` | `{shown}` |" in text, f"{DOC.name} does not document {name}"
