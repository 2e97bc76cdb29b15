"""The JSON codec python-socketio uses for our packets.

Stores hand back what their database gives them; dates, decimals and UUIDs
are written the way a browser can read them instead of failing the answer.
"""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import math
import uuid
from typing import Any

from .errors import BadRequest

log = logging.getLogger("backboneio")
loads = json.loads

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
    kwargs.setdefault("default", _default)
    kwargs.setdefault("separators", (",", ":"))
    return json.dumps(value, **kwargs)
