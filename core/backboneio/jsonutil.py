"""The JSON codec python-socketio uses for our packets: orjson, with a careful fallback.

Stores hand back what their database gives them; dates, decimals and UUIDs
are written the way a browser can read them instead of failing the answer.
Decoding refuses what a browser could not have sent as JSON and what would
hurt the server: NaN and Infinity, lone UTF-16 surrogates, and nesting past
orjson's 1,024 levels (the stdlib decoder would recurse into a RecursionError).
"""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import math
import uuid
from typing import Any

import orjson

from .errors import BadRequest

log = logging.getLogger("backboneio")
JSONDecodeError = orjson.JSONDecodeError
_OPTIONS = orjson.OPT_NON_STR_KEYS


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """Decode JSON; raises :data:`JSONDecodeError` (a ``ValueError``) on anything else."""
    return orjson.loads(text)


MAX_DEPTH = 64


def _default(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    # Better a string the client can see than an answer that never arrives.
    log.warning("Sending %s as a string: JSON cannot hold it", type(value).__name__)
    return str(value)


def check_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what a client sent that is not plain JSON a browser can read back.

    Python's json module accepts NaN and Infinity, and python-socketio
    reassembles binary attachments into bytes; stored, either would break
    every browser that later reads the model (socket.io-client drops the
    connection on a NaN).
    """
    if depth > MAX_DEPTH:
        raise BadRequest(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"{where} holds {value}: numbers must be finite")
        return
    if isinstance(value, list):
        for item in value:
            check_value(item, where, depth + 1)
        return
    if isinstance(value, dict):
        for item in value.values():
            check_value(item, where, depth + 1)
        return
    raise BadRequest(f"{where} holds {type(value).__name__}: only JSON values are accepted")


def dumps(value: Any, **kwargs: Any) -> str:
    """Compact JSON text. (python-socketio passes ``separators``; orjson is always compact.)"""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except TypeError:
        # Integers beyond 64 bits, subclasses orjson will not take: the
        # stdlib writes what it can, NaN included as null like orjson.
        return json.dumps(_finite(value), default=_default, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
