"""The JSON codec python-socketio uses for our packets.

Stores hand back what their database gives them; dates, decimals and UUIDs
are written the way a browser can read them instead of failing the answer.
"""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import uuid
from typing import Any

log = logging.getLogger("backboneio")
loads = json.loads


def _default(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    # Better a string the client can see than an answer that never arrives.
    log.warning("Sending %s as a string: JSON cannot hold it", type(value).__name__)
    return str(value)


def dumps(value: Any, **kwargs: Any) -> str:
    kwargs.setdefault("default", _default)
    kwargs.setdefault("separators", (",", ":"))
    return json.dumps(value, **kwargs)
