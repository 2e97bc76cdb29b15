"""How model bodies are written as JSON, and which values a database cannot hold."""

from __future__ import annotations

import json
import math
from typing import Any

from backboneio.errors import BadRequest

#: Below this, a float with no fraction and the int of the same value write the same.
EXACT_FLOAT_INTS = 2**53


def plain_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < EXACT_FLOAT_INTS:
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def canonical_dumps(value: Any) -> str:
    """JSON text in which equal JSON values nested in a model are equal text.

    SQLite hands back a nested array or object as the JSON text it stored, so
    an exact match on one compares text. Keys are sorted and, inside arrays and
    objects, ``2.0`` is written ``2`` (the same JSON number): then equal values
    are equal text. Top-level fields keep their spelling; SQLite compares those
    as numbers anyway.
    """
    if isinstance(value, dict):
        value = {
            k: v if not isinstance(v, (dict, list)) else _canonical(v) for k, v in value.items()
        }
    elif isinstance(value, list):
        value = _canonical(value)
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    )


def canonical_text(value: Any) -> str:
    """The text :func:`canonical_dumps` writes for ``value`` nested in a model."""
    return json.dumps(
        _canonical(value),
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
        allow_nan=False,
    )


def check_storable(model: dict[str, Any], *, nul_allowed: bool) -> None:
    """Refuse, before anything is written, values JSON columns cannot hold.

    Non-finite numbers have no JSON spelling; PostgreSQL's ``jsonb`` cannot
    hold the NUL character in a key or a string.
    """

    def walk(value: Any, path: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"{path} is {value}, which JSON cannot hold", field=path)
        if isinstance(value, str):
            if not nul_allowed and "\x00" in value:
                raise BadRequest(
                    f"{path} contains a NUL character, which this database cannot store", field=path
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise BadRequest(f"{path} has a key that is not a string", field=path)
                if not nul_allowed and "\x00" in key:
                    raise BadRequest(
                        f"{path} has a key with a NUL character, which this database cannot store",
                        field=path,
                    )
                walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif value is not None and not isinstance(value, (bool, int, float)):
            raise BadRequest(f"{path} is a {type(value).__name__}, not a JSON value", field=path)

    walk(model, "")
